"""Writes scripts/demo/corpus.jsonl: ~300 short documents with the cases a cross-encoder is for.

Hotels with and without a pool, Paris Hilton the person against Hilton hotels in Paris, who invented the
telephone against pages merely about telephones, "is Python faster than Java" against pages that only
mention both, plus everyday filler. Deterministic: rerunning writes the same file.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import orjson

CITIES = ["Lisbon", "Porto", "Seville", "Nice", "Lyon", "Bologna", "Split", "Valencia", "Bruges", "Krakow"]
HOTEL_WORDS = ["Harbour", "Garden", "Old Town", "Riverside", "Central", "Sunset"]


def hotels(rng: random.Random) -> list[dict[str, str]]:
    docs = []
    for city, word in itertools.product(CITIES, HOTEL_WORDS):
        name = f"{word} Hotel {city}"
        kind = rng.choice(["pool", "no pool", "pool closed", "near pool"])
        body = {
            "pool": f"{name} has a heated outdoor swimming pool open all year, a sun terrace and free breakfast.",
            "no pool": f"{name} does not have a swimming pool; guests enjoy a rooftop bar, a gym and free breakfast.",
            "pool closed": f"At {name} the swimming pool is closed for renovation until next summer; the spa is open.",
            "near pool": f"{name} has no pool of its own, but the public swimming pool is a ten-minute walk away.",
        }[kind]
        docs.append({"title": name, "text": body, "metadata": {"type": "hotel", "city": city, "pool": kind == "pool"}})
    return docs


HAND_WRITTEN = [
    ("Paris Hilton", "Paris Hilton is an American media personality, businesswoman and DJ, born in New York in 1981."),
    ("Paris Hilton's career", "Paris Hilton became famous through the reality show The Simple Life and later "
     "built a fragrance and fashion business."),
    ("Hilton Paris Opera", "The Hilton Paris Opera is a historic hotel next to Gare Saint-Lazare in Paris."),
    ("Hilton Paris La Defense",
     "Hilton Paris La Defense is a business hotel in the La Defense district, west of Paris."),
    ("Hilton Hotels", "Hilton Hotels & Resorts is a global hotel brand founded by Conrad Hilton in 1919."),
    ("Paris travel", "Paris hotels range from small guesthouses in Montmartre to international chains such as Hilton."),
    ("Invention of the telephone", "Alexander Graham Bell was awarded the first US patent for the telephone in 1876."),
    ("Antonio Meucci", "Antonio Meucci developed a voice-communication apparatus years before Bell and is credited "
     "by some historians as the inventor of the telephone."),
    ("Elisha Gray", "Elisha Gray filed a caveat for a telephone design on the same day Bell filed his patent."),
    ("Telephone etiquette", "Answer the telephone politely, state your name, and avoid eating during a call."),
    ("Telephone numbers", "Telephone numbers in France have ten digits and start with zero."),
    ("Mobile phones", "Modern mobile phones combine a telephone with a camera, a browser and GPS."),
    ("Telephone history museum", "The telephone museum shows switchboards, rotary dials and early mobile phones."),
    ("Python performance", "CPython is generally slower than Java for CPU-bound code because it interprets bytecode, "
     "while the JVM compiles hot paths to machine code."),
    ("PyPy", "PyPy is a Python implementation with a JIT compiler that narrows the speed gap with Java."),
    ("Java vs Python benchmarks", "In most benchmark suites Java runs numeric loops several times faster than Python."),
    ("Learning to code", "Python and Java are both popular first languages taught at universities."),
    ("Job market", "Job listings often ask for Python or Java experience along with SQL."),
    ("Coffee and code", "Java is also a name for coffee; many programmers drink it while writing Python."),
    ("Python the snake", "The reticulated python is among the longest snakes in the world."),
    ("Java the island", "Java is an Indonesian island, home to the capital Jakarta."),
    ("Is bigger always faster?", "A larger engine does not always make a car faster; weight and aerodynamics matter."),
    ("Available in blue", "The Aria backpack is available in blue, green and black."),
    ("Not available in blue", "The Nimbus backpack is not available in blue; it comes in grey and red only."),
    ("Vegetarian restaurant", "Verde is a vegetarian restaurant; it serves no meat and no fish."),
    ("Steakhouse", "Bruno's is a steakhouse that also offers one vegetarian dish."),
    ("Who wrote Hamlet", "Hamlet was written by William Shakespeare around 1600."),
    ("Hamlet the cigar", "Hamlet is a brand of cigars made in the United Kingdom."),
    ("Theatre listings", "This week the city theatre stages Hamlet, Macbeth and a new comedy."),
    ("Capital of Australia", "Canberra, not Sydney, is the capital city of Australia."),
    ("Sydney", "Sydney is the largest city in Australia and home of the Opera House."),
]

FILLER_TOPICS = {
    "cooking": ["How to bake sourdough bread at home", "A quick tomato pasta for weeknights",
                "Roasting vegetables evenly in the oven", "Why rice needs resting after cooking"],
    "science": ["Photosynthesis turns light into chemical energy", "Black holes bend light around them",
                "Vaccines train the immune system", "Plate tectonics shapes continents over millions of years"],
    "sport": ["The marathon distance is 42.195 kilometres", "Tennis scoring goes love, 15, 30, 40",
              "Cycling's Tour de France lasts three weeks", "Swimming strokes: freestyle, backstroke, breaststroke"],
    "travel": ["Packing light for a week in Europe", "Night trains across the Alps",
               "Travel insurance covers cancellations", "Visiting museums on free Sundays"],
    "computing": ["SQL joins combine rows from two tables", "Kafka topics are split into partitions",
                  "Vector search finds nearest neighbours", "Garbage collection frees unused memory"],
}


def filler(rng: random.Random) -> list[dict[str, str]]:
    docs = []
    for topic, sentences in FILLER_TOPICS.items():
        for index in range(40):
            first, second = rng.sample(sentences, 2)
            docs.append({"title": f"{topic.title()} note {index + 1}", "text": f"{first}. {second}.",
                         "metadata": {"type": topic}})
    return docs


def main() -> None:
    rng = random.Random(7)
    documents = hotels(rng) + [{"title": t, "text": x, "metadata": {"type": "hard case"}} for t, x in HAND_WRITTEN]
    documents += filler(rng)
    path = Path(__file__).with_name("corpus.jsonl")
    path.write_bytes(b"".join(orjson.dumps({"_id": f"demo-{i:03d}", **doc}) + b"\n" for i, doc in enumerate(documents)))
    print(f"{len(documents)} documents -> {path}")


if __name__ == "__main__":
    main()

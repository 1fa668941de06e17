"""Contrastive training pairs for negation and constraints, generated from templates: a query, a passage that
satisfies it and a near-twin that violates it. Half the negation pairs ask for the feature and half for its
absence, so the student learns to read the constraint rather than to prefer passages that say "no".

The domains and phrasings here are kept apart from the hand-written test cases (constraints.jsonl: hotels,
laptops, flights, ...), so that set still measures generalisation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["ContrastivePair", "contrastive_pairs"]

_FEATURES: dict[tuple[str, str], tuple[str, ...]] = {
    ("tent", "tents"): ("a rain fly", "a vestibule", "a ground sheet", "aluminium poles", "mesh windows"),
    ("guitar", "guitars"): ("a built-in tuner", "a cutaway body", "a hard case", "a pickup", "a solid spruce top"),
    ("printer", "printers"): ("a duplex unit", "wireless printing", "a fax function", "a scanner", "a colour mode"),
    ("backpack", "backpacks"): ("a laptop sleeve", "a hip belt", "a rain cover", "a hydration pocket", "side zips"),
    ("sofa", "sofas"): ("a pull-out bed", "removable covers", "a chaise section", "storage drawers", "recliners"),
    ("boat", "boats"): ("an outboard motor", "a cabin", "a swim ladder", "a trailer", "a bimini top"),
    ("kettle", "kettles"): ("temperature control", "a keep-warm mode", "a limescale filter", "a glass body",
                            "a whistle"),
    ("school", "schools"): ("a school uniform", "a swimming programme", "boarding places", "a canteen",
                            "bus transport"),
    ("campsite", "campsites"): ("electric hook-ups", "hot showers", "a shop", "fire pits", "a laundry room"),
    ("gym", "gyms"): ("a sauna", "group classes", "a climbing wall", "personal trainers", "24-hour access"),
    ("tablet", "tablets"): ("a stylus", "a keyboard cover", "cellular data", "a memory card slot", "face unlock"),
    ("stroller", "strollers"): ("a carrycot", "a rain cover", "a one-hand fold", "air-filled tyres", "a cup holder"),
    ("dishwasher", "dishwashers"): ("a cutlery tray", "a half-load mode", "a delay timer", "a steam cycle",
                                    "a water softener"),
    ("conference", "conferences"): ("a poster session", "live streaming", "a workshop day", "travel grants",
                                    "a student discount"),
    ("bakery", "bakeries"): ("gluten-free bread", "a seating area", "home delivery", "vegan pastries",
                             "a drive-through"),
}

_NAMES = ("Alder", "Birch", "Cedar", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper", "Kestrel",
          "Lumen", "Maple", "Nimbus", "Orchid", "Pioneer", "Quartz", "Ridge", "Summit", "Tundra")

_ASK_WITHOUT = ("{plural} without {f}", "{plural} that do not have {f}", "{plural} with no {bare}",
                "a {singular} that does not come with {f}", "{plural} lacking {f}", "which {plural} have no {bare}")
_ASK_WITH = ("{plural} with {f}", "{plural} that have {f}", "a {singular} that comes with {f}",
             "which {plural} include {f}", "{plural} offering {f}")
_HAS = ("The {name} {singular} comes with {f} and {g}.", "The {name} {singular} includes {f}, along with {g}.",
        "{f} and {g} are both part of the {name} {singular}.", "The {name} is a {singular} that offers {g} and {f}.")
_LACKS = ("The {name} {singular} comes with {g}, but it has no {bare}.",
          "The {name} {singular} includes {g}, not {f}.",
          "The {name} {singular} does not offer {f}, though it has {g}.",
          "There is no {bare} on the {name} {singular}, which offers {g} instead.")

_QUANTITIES: tuple[tuple[str, str, str, str, tuple[int, int]], ...] = (
    # (plural, what is measured, unit, passage template, value range)
    ("tents", "weighing", "kg", "The {name} tent weighs {value} kg packed.", (1, 9)),
    ("boats", "longer than / shorter than", "metres", "The {name} boat is {value} metres long.", (4, 30)),
    ("printers", "costing", "dollars", "The {name} printer costs {value} dollars.", (80, 900)),
    ("schools", "with", "pupils", "The {name} school has {value} pupils.", (150, 2000)),
    ("kettles", "holding", "litres", "The {name} kettle holds {value} litres of water.", (1, 3)),
    ("conferences", "with", "speakers", "The {name} conference hosts {value} speakers.", (10, 400)),
    ("bridges", "spanning", "metres", "The {name} bridge spans {value} metres.", (40, 2000)),
    ("tablets", "with a battery of", "hours", "The {name} tablet lasts {value} hours on one charge.", (5, 20)),
)
_BUILT = ("The {name} library was built in {value}.", "The {name} bridge opened in {value}.",
          "The {name} observatory was founded in {value}.")
_BUILT_PLURALS = ("libraries built", "bridges opened", "observatories founded")


@dataclass(frozen=True)
class ContrastivePair:
    kind: str
    query: str
    satisfies: str
    violates: str


def _negation(rng: random.Random) -> ContrastivePair:
    (singular, plural), features = rng.choice(list(_FEATURES.items()))
    f, g = rng.sample(features, 2)
    bare = f.removeprefix("an ").removeprefix("a ")
    name = rng.choice(_NAMES)
    has = rng.choice(_HAS).format(name=name, singular=singular, f=f, g=g)
    lacks = rng.choice(_LACKS).format(name=name, singular=singular, f=f, g=g, bare=bare)
    has = has[0].upper() + has[1:]
    if rng.random() < 0.5:
        asked = rng.choice(_ASK_WITHOUT).format(plural=plural, singular=singular, f=f, bare=bare)
        return ContrastivePair("negation", asked, lacks, has)
    return ContrastivePair("negation", rng.choice(_ASK_WITH).format(plural=plural, singular=singular, f=f), has, lacks)


def _threshold(rng: random.Random, low: int, high: int) -> tuple[int, int, int]:
    """(threshold, a value below it, a value above it) inside [low, high]."""
    threshold = rng.randint(low + 1, max(low + 1, high - 1))
    return threshold, rng.randint(low, threshold - 1), rng.randint(threshold + 1, max(threshold + 1, high))


def _constraint(rng: random.Random) -> ContrastivePair:
    name = rng.choice(_NAMES)
    if rng.random() < 0.25:
        k = rng.randrange(len(_BUILT))
        threshold, early, late = _threshold(rng, 1800, 2020)
        before = rng.random() < 0.5
        query = f"{_BUILT_PLURALS[k]} {'before' if before else 'after'} {threshold}"
        early_text, late_text = (_BUILT[k].format(name=name, value=value) for value in (early, late))
        return ContrastivePair("constraint", query, *((early_text, late_text) if before else (late_text, early_text)))
    plural, measured, unit, passage, (low, high) = rng.choice(_QUANTITIES)
    threshold, small, large = _threshold(rng, low, high)
    fewer = rng.random() < 0.5
    verb = measured.split(" / ")[1 if fewer else 0] if " / " in measured else measured
    if " / " in measured:
        query = f"{plural} {verb} {threshold} {unit}"
    else:
        query = f"{plural} {verb} {'less than' if fewer else 'more than'} {threshold} {unit}"
    small_text, large_text = (passage.format(name=name, value=value) for value in (small, large))
    return ContrastivePair("constraint", query, *((small_text, large_text) if fewer else (large_text, small_text)))


def contrastive_pairs(count: int, rng: random.Random) -> list[ContrastivePair]:
    """`count` pairs, half negation and half numeric or date constraints."""
    return [(_negation if i % 2 == 0 else _constraint)(rng) for i in range(count)]

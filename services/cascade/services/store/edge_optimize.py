"""Child process of EdgeStore.build_index: optimise (build the HNSW index of) one shard folder, then exit.

Run as a script by path, so it imports nothing but qdrant-edge; at a lower priority than the serving process.
"""

import os
import sys

from qdrant_edge import EdgeShard


def main(path: str) -> None:
    os.nice(10)  # serving first: queries keep their CPU while the index builds
    shard = EdgeShard.load(path)
    shard.optimize()
    shard.flush()
    shard.close()


if __name__ == "__main__":
    main(sys.argv[1])

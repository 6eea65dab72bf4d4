"""Short and long texts over the tiny tokenizer's vocabulary."""

TEXTS = [
    "the movie was great",
    "a terrible plot with a dull ending",
    "really fun",
    "the cast and the director seemed quite weak and the script was poor and boring",
    "our story",
    "this film is about sports and science and the music was lovely with a superb ending",
]

"""codegen: Program -> text. One printer per backend (python, numpy, c), choosing names, spellings,
buffers and function splits, never what is computed; names.py makes legal, predictable names."""

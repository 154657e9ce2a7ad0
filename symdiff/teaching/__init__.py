"""teaching: reverse mode shown at a point (explain: the forward and reverse tables, in text,
Markdown, LaTeX, HTML or JSON) and as a picture (graph: the computational graph, through Graphviz).
Built on the core only."""

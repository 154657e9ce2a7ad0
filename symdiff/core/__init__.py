"""core: the compiler. Text (or SymPy) -> AST -> tape -> reverse and tangent sweeps -> simplified
sweeps -> Program, the one structured program every backend prints. Imports nothing from codegen,
teaching, callables or the API; every mathematical decision is taken here."""

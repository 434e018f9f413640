"""`ocg quickstart`: corpus -> tokenizer -> NL/Multi/Mono training -> evaluation -> report, on this machine's own
sources, in one run directory (see pipeline.py for the stages and the layout)."""

"""How model families spell a PSM fill-in-the-middle prompt as text, for servers that take no `suffix` field (vLLM,
llama.cpp's OpenAI endpoint): the prompt carries the model's own FIM tokens and the server tokenizes them as
special tokens."""

FIM_FORMATS: dict[str, str] = {
    "qwen": "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>",  # also ocg's own models, CodeGemma
    "starcoder": "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>",  # also SantaCoder, StarCoder2
    "codellama": "<PRE> {prefix} <SUF>{suffix} <MID>",
    "deepseek": "<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>",
}
# Text that ends a middle when a server prints special tokens instead of stopping at them.
FIM_END_STOPS = ("<|endoftext|>", "<|file_sep|>", "<|fim_pad|>", "<|fim_prefix|>", "<fim_prefix>", "<EOT>",
                 "<｜end▁of▁sentence｜>")

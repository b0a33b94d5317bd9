"""The tiny build's tokenizer: the shared byte-level BPE, with the family's special tokens, BOS
rule and chat template."""

from __future__ import annotations

from genai.families.family import Family

VOCAB_SIZE = 384  # learned tokens, as genai/tiny-llama; the family's special tokens come on top
MAX_LENGTH = 2048


def build_tokenizer(family: Family):
    """A PreTrainedTokenizerFast carrying `family`'s special tokens (one id each), bos/eos/pad and
    chat template. Where the family has a BOS, plain text gets one (as the real tokenizers do);
    the template writes its own, so rendered chats are tokenized without special tokens."""
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast

    from genai.tiny import train_byte_bpe

    specials = list(family.all_special_tokens())
    tok = train_byte_bpe(VOCAB_SIZE + len(specials), specials)
    if family.added_tokens:  # single ids that stay visible when decoding (Qwen's <tool_call>, <think>)
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in family.added_tokens])
    if family.bos_token:
        bos, bos_id = family.bos_token, tok.token_to_id(family.bos_token)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    named = {family.bos_token, family.eos_token, family.pad_token}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=family.bos_token,
        eos_token=family.eos_token,
        pad_token=family.pad_token,
        additional_special_tokens=[t for t in specials if t not in named],
        model_max_length=MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = family.chat_template
    return fast

"""A WordPiece tokenizer trained on the corpus, for readers trained from scratch.

No pretrained Korean encoder ships in a Python package and no model hub is assumed, so the default reader learns its own
vocabulary. Normalisation is NFC + lowercase and never strips accents: accent stripping goes through
NFD, which splits every Hangul syllable into jamo and triples sequence lengths.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _bare_tokenizer(model) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def train_wordpiece_tokenizer(
    texts: Iterable[str],
    out_dir: str | Path | None = None,
    vocab_size: int = 8000,
    min_frequency: int = 2,
    morphemes: bool = False,
    num_workers: int = -1,
) -> PreTrainedTokenizerFast:
    """Train a BERT-style WordPiece tokenizer on `texts`; save it to `out_dir` when given.

    `morphemes`: learn the vocabulary from Kiwi pieces (odqa.text.morphemes), so no token joins a word
    and its particle or ending; on KorQuAD dev 99 % of answers then start and end on token boundaries,
    against 77-83 % for whole eojeol (docs/reader-recipe.md). Only the vocabulary changes: the saved
    tokenizer is the same plain WordPiece tokenizer, and reading text needs no Kiwi.
    `num_workers`: Kiwi's threads (-1: all cores).

    The result round-trips through `save_pretrained` / `AutoTokenizer.from_pretrained`.
    """
    if morphemes:
        from odqa.text.morphemes import morpheme_pieces

        texts = (" ".join(pieces) for pieces in morpheme_pieces(texts, num_workers=num_workers))
    texts = list(texts)
    trained = _bare_tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    # Every character gets its '##' form, numbered up front in sorted order (as special tokens of the
    # trainer only). Up front: tokenizers' trainer numbers them as it meets them while walking a hash
    # map and breaks ties between equally frequent merges by those numbers, so the same corpus gave
    # another vocabulary in every process (huggingface/tokenizers#1794; make run's EM moved by 1.3).
    # Every character: learned from morpheme pieces, a particle such as 은 may only ever start a piece,
    # and without '##은' WordPiece, which reads whole eojeol at inference, turns "세종대왕은" into [UNK].
    normalize = trained.normalizer.normalize_str
    continuations = [f"##{c}" for c in sorted({c for t in texts for c in normalize(t) if not c.isspace()})]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS + continuations,
        show_progress=False,
    )
    trained.train_from_iterator(texts, trainer=trainer)
    # the same vocabulary in a tokenizer whose only special tokens are BERT's
    tok = _bare_tokenizer(
        models.WordPiece(vocab=trained.get_vocab(), unk_token="[UNK]", max_input_chars_per_word=100)
    )
    tok.add_special_tokens(SPECIAL_TOKENS)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    log.info("trained WordPiece tokenizer: %d tokens%s", len(fast), " (Kiwi morphemes)" if morphemes else "")
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast

"""Fast paths of the header encoders against the plain code they stand in for."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.mail.headers import _split_encoded_words, encoded_words


@given(st.text(alphabet=st.characters(max_codepoint=0x1F680, blacklist_categories=("Cs",)), max_size=40))
@settings(max_examples=1500, deadline=None)
def test_encoded_words_in_one_translate_is_the_character_loop(text: str) -> None:
    """Names and subjects short enough for one encoded-word (and longer ones, which take the loop)."""
    assert encoded_words(text) == _split_encoded_words(text)


def test_encoded_words_splits_a_long_name_between_characters() -> None:
    words = encoded_words("Ø" * 40)
    assert len(words) > 1
    assert words == _split_encoded_words("Ø" * 40)
    assert all(len(word) <= 75 for word in words)

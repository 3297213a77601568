from engine.text.commands import apply_commands


def test_punctuation_attaches_to_the_previous_word_and_capitalises_the_next_sentence():
    assert apply_commands("the patient is well period she will return in two weeks full stop") == \
        "The patient is well. She will return in two weeks."
    assert apply_commands("is it painful question mark yes comma a little") == "Is it painful? Yes, a little"


def test_new_line_and_new_paragraph():
    assert apply_commands("dear doctor smith comma new line thank you period new paragraph regards") == \
        "Dear doctor smith,\nThank you.\n\nRegards"


def test_quotes():
    assert apply_commands("she said open quote we cannot wait close quote period") == \
        "She said \u201cwe cannot wait\u201d."


def test_scratch_that_removes_the_last_phrase_only():
    assert apply_commands("start aspirin period give ten milligrams scratch that give five milligrams period") == \
        "Start aspirin. Give five milligrams."


def test_delete_last_word():
    assert apply_commands("take two tablets daily delete last word twice daily") == "Take two tablets twice daily"


def test_capitalisation_commands():
    assert apply_commands("refer to cap smith at all caps nhs england") == "Refer to Smith at NHS england"


def test_literal_writes_a_command_word_as_text():
    assert apply_commands("type the word literal comma here") == "Type the word comma here"


def test_commands_at_the_very_start_do_nothing_harmful():
    assert apply_commands("comma period scratch that delete last word new line hello") == "Hello"
    assert apply_commands("scratch that") == ""
    assert apply_commands("literal") == "Literal"


def test_recogniser_punctuation_around_spoken_commands_is_not_doubled():
    assert apply_commands("The dose, comma five milligrams. Period.") == "The dose, five milligrams."


def test_text_without_commands_is_only_capitalised():
    assert apply_commands("blood pressure one twenty over eighty", auto_capitalize=False) == \
        "blood pressure one twenty over eighty"

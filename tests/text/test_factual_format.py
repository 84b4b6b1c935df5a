"""Reading generated FACTUAL-style graphs: good, odd and malformed text; never an exception."""

import pytest

from sgpipe.text.factual_format import GeneratedGraph, read_graph


def test_relations_and_attributes_are_kept_apart():
    graph = read_graph("( man , ride , horse ) , ( horse , is , brown ) , ( pigs , is , 2 )")
    assert graph == GeneratedGraph(
        relations=(("man", "ride", "horse"),), attributes=(("horse", "brown"), ("pigs", "2")), malformed=0
    )


def test_multi_word_entities_and_predicates():
    graph = read_graph("( fire hydrant , on side of , street ) , ( bags , on back of , pigs )")
    assert graph.relations == (("fire hydrant", "on side of", "street"), ("bags", "on back of", "pigs"))


@pytest.mark.parametrize(
    "text",
    [
        "( man , ride , horse )",
        "(man,ride,horse)",
        "  ( Man ,  Ride ,   HORSE )  ",
        "( man , ride , horse ),",
        "Generate Scene Graph: ( man , ride , horse )",
        "( man , v:ride , horse:1 )",  # the marks of FACTUAL's -id models
        "( man , , ride , horse )",  # a doubled comma
        "( man , ride , horse , )",  # a trailing comma inside
        "( man , ride , horse ) , ( man , ride , horse )",  # a duplicate counts once
        "( man , ride , horse ) ,, , ( man , ride , horse )",
    ],
)
def test_odd_spacing_case_marks_and_commas_read_the_same(text):
    assert read_graph(text) == GeneratedGraph(relations=(("man", "ride", "horse"),))


def test_passive_marks_and_node_indexes_are_dropped():
    graph = read_graph("( car , pv:park on , ground ) , ( monkey , v:sit next to , monkey:1 )")
    assert graph.relations == (("car", "park on", "ground"), ("monkey", "sit next to", "monkey"))
    assert graph.malformed == 0


@pytest.mark.parametrize(
    "text, relations, malformed",
    [
        ("", (), 0),
        ("   ", (), 0),
        ("( man , ride )", (), 1),  # a pair
        ("( man )", (), 1),
        ("( )", (), 1),
        ("( man , ride , on , horse )", (), 1),  # four parts
        ("( man , ride , horse ) , ( horse ,", (("man", "ride", "horse"),), 1),  # cut off at the token limit
        ("( man , ride , horse", (), 1),  # unbalanced: never closed
        ("man , ride , horse )", (), 2),  # unbalanced: never opened (loose words, a stray parenthesis)
        ("( man , ride , ( horse , is , brown )", (), 1),  # a tuple opened inside another
        ("( man , ride , horse ) )", (("man", "ride", "horse"),), 1),  # a stray closing parenthesis
        ("a man riding a horse", (), 1),  # no tuple at all
        ("( man , ride , horse ) and then", (("man", "ride", "horse"),), 1),
        ("(((", (), 3),
        (")))", (), 3),
    ],
)
def test_malformed_fragments_are_dropped_and_counted(text, relations, malformed):
    graph = read_graph(text)
    assert graph.relations == relations
    assert graph.malformed == malformed


def test_an_unbalanced_attribute_is_not_read_as_one():
    graph = read_graph("( man , ride , horse ) , ( horse , is , brown")
    assert graph.attributes == () and graph.malformed == 1


def test_none_and_unicode_never_raise():
    assert read_graph(None) == GeneratedGraph()  # type: ignore[arg-type]
    assert read_graph("( 男人 , 骑 , 马 )").relations == (("男人", "骑", "马"),)
    assert read_graph("🐱 ( , , ) 🐶").malformed == 3  # two loose pieces and an empty tuple

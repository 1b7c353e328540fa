"""The arch grammar: conv<filters>k<kernel>[s<stride>][v], pool<n>, avgpool<n>, fc<n> / <n>; every dense arch
parses as before; bad grammar is refused in one line naming the token and the valid forms."""

import numpy as np
import pytest

from bpfree.arch import ConvSpec, arch_string, input_shape, is_conv, parse_arch, parse_layers


def test_lenet5_parses_into_two_conv_blocks_with_their_pools_and_two_dense_layers():
    blocks = parse_layers("conv6k5-pool2-conv16k5-pool2-120-84")
    assert blocks == (ConvSpec(6, 5, 1, (("max", 2),)), ConvSpec(16, 5, 1, (("max", 2),)), 120, 84)
    assert is_conv("conv6k5-pool2-conv16k5-pool2-120-84") and not is_conv("500-500")


def test_strides_average_pools_and_fc_tokens_round_trip():
    blocks = parse_layers("conv64k3s2-avgpool2-pool2-conv8k1-fc10")
    assert blocks == (ConvSpec(64, 3, 2, (("average", 2), ("max", 2))), ConvSpec(8, 1), 10)
    assert arch_string(blocks) == "conv64k3s2-avgpool2-pool2-conv8k1-10"
    assert parse_layers(arch_string(blocks)) == blocks


@pytest.mark.parametrize("arch", ["500", "500-1000-500", (500, 1000, 500), [3, 4]])
def test_every_dense_arch_parses_to_its_widths_as_before(arch):
    widths = parse_arch(arch)
    assert widths == parse_layers(arch) and all(isinstance(w, int) for w in widths)
    assert arch_string(arch) == "-".join(map(str, widths))


def test_valid_padding_suffix_parses_and_round_trips():
    blocks = parse_layers("conv6k5v-pool2-conv16k5s1v-pool2-conv120k5v-84")
    assert blocks == (ConvSpec(6, 5, 1, (("max", 2),), "valid"), ConvSpec(16, 5, 1, (("max", 2),), "valid"),
                      ConvSpec(120, 5, 1, (), "valid"), 84)
    assert arch_string(blocks) == "conv6k5v-pool2-conv16k5v-pool2-conv120k5v-84"  # s1 is the default stride
    assert parse_layers("conv4k3s2v")[0] == ConvSpec(4, 3, 2, padding="valid")
    assert arch_string("conv4k3s2v") == "conv4k3s2v"
    assert parse_layers("conv4k3")[0].padding == "same"


def test_output_shapes_of_valid_convolutions():
    # biotorch's LeNet on 32×32: 32 → 28 → 14 → 10 → 5 → 1.
    shape = (32, 32, 1)
    for spec in parse_layers("conv6k5v-pool2-conv16k5v-pool2-conv120k5v"):
        shape = spec.output_shape(shape)
    assert shape == (1, 1, 120)
    assert ConvSpec(6, 5, 1, padding="valid").output_shape((32, 32, 1)) == (28, 28, 6)
    # ⌊(8 − 3)/2⌋ + 1, ⌊(7 − 3)/2⌋ + 1
    assert ConvSpec(4, 3, 2, padding="valid").output_shape((8, 7, 3)) == (3, 3, 4)
    with pytest.raises(ValueError, match=r"'conv4k5v' on a 4×4 map: a 'valid' 5×5 convolution needs a map of at least"):
        ConvSpec(4, 5, 1, padding="valid").output_shape((4, 4, 1))


def test_output_shapes_of_same_convolutions_and_valid_pools():
    assert ConvSpec(6, 5, 1, (("max", 2),)).output_shape((28, 28, 1)) == (14, 14, 6)
    assert ConvSpec(4, 3, 2).output_shape((7, 7, 3)) == (4, 4, 4)  # 'same': ⌈7/2⌉
    assert ConvSpec(4, 3, 1, (("average", 2),)).output_shape((5, 5, 1)) == (2, 2, 4)


@pytest.mark.parametrize("arch,fragment", [
    ("conv6k5-x", "unknown token 'x'"),
    ("500-abc", "unknown token 'abc'"),
    ("500--500", "unknown token ''"),
    ("10-conv3k3", "'conv3k3' comes after a dense layer"),
    ("10-pool2", "'pool2' comes after a dense layer"),
    ("pool2-conv3k3", "'pool2' does not follow a convolution"),
    ("conv0k3", "'conv0k3' needs positive numbers"),
    ("conv3k3s0", "'conv3k3s0' needs positive numbers"),
    ("0", "'0' needs positive numbers"),
    ("", "no layers"),
    ("conv3k", "unknown token 'conv3k'"),
    ("conv3k3vv", "unknown token 'conv3k3vv'"),
    ("conv3kv3", "unknown token 'conv3kv3'"),
    ("conv3k3vs2", "unknown token 'conv3k3vs2'"),
])
def test_bad_grammar_is_refused_in_one_line_with_the_valid_forms(arch, fragment):
    with pytest.raises(ValueError) as error:
        parse_layers(arch)
    message = str(error.value)
    assert fragment in message and "\n" not in message
    assert "conv<filters>k<kernel>[s<stride>]" in message and "avgpool<size>" in message


def test_a_model_that_trains_dense_nets_only_refuses_conv_tokens_by_name():
    with pytest.raises(ValueError, match="gait trains fully connected networks only"):
        parse_arch("conv4k3-64", owner="gait")


@pytest.mark.parametrize("value,shape", [(64, (64,)), ((8, 8, 1), (8, 8, 1)), ([28, 28, 1], (28, 28, 1))])
def test_input_shapes(value, shape):
    assert input_shape(value) == shape


@pytest.mark.parametrize("value", [0, -3, (8, 8), (8, 0, 1), "64", None, 2.5])
def test_bad_input_shapes_are_refused(value):
    with pytest.raises(ValueError, match="Invalid input_dim"):
        input_shape(value)


@pytest.mark.parametrize("arch,shape", [("conv6k5-pool2-conv16k5-pool2-8", (28, 28, 1)),
                                        ("conv6k5v-pool2-conv16k5v-pool2-conv120k5v-84", (32, 32, 1)),
                                        ("conv3k4s3v-conv2k2v-avgpool2-5", (17, 16, 2)),
                                        ("conv4k3s2-avgpool3-conv2k2s3-pool2-8", (31, 29, 2))])
def test_conv_spec_output_shapes_are_what_keras_builds(arch, shape):
    from bpfree import build_model

    model = build_model("bp", arch, shape, 3, seed=0)
    current = shape
    for spec, block in zip(parse_layers(arch), model.blocks):
        if isinstance(spec, ConvSpec):
            keras_shape = block.compute_output_shape((None, *current))
            current = spec.output_shape(current)
            assert tuple(keras_shape[1:]) == current


def test_poolings_that_shrink_the_map_to_nothing_are_refused_before_building():
    from bpfree import build_model

    with pytest.raises(ValueError, match="shrink the feature map at conv2k2s3-pool2 to nothing"):
        build_model("bp", "conv4k3s2-avgpool3-conv2k2s3-pool2-8", (23, 17, 2), 3)


def test_biotorch_lenet_with_valid_convolutions_has_lenet5s_61706_weights():
    """32 → 28 → 14 → 10 → 5 → 1: 156 + 2,416 + 48,120 + 10,164 + 850, as the search's memory check counts
    them and as Keras builds them."""
    from bpfree import build_model
    from bpfree.tuning.validation import parameter_count

    arch = "conv6k5v-pool2-conv16k5v-pool2-conv120k5v-84"
    assert parameter_count(arch, (32, 32, 1), 10) == 61706
    assert sum(int(np.prod(v.shape)) for v in build_model("bp", arch, (32, 32, 1), 10).trainable_weights) == 61706

"""Custom Keras layers: hidden blocks, fixed feedback projections, feedback-alignment dense layers."""

from bpfree.layers.block import ACTIVATIONS, DenseBlock, activation_function
from bpfree.layers.feedback import BW_INITS, FeedbackAlignmentDense, FeedbackProjection, feedback_initializer
from bpfree.layers.gle import GLEDense  # noqa: E402
from bpfree.layers.learned_inverse import LearnedInverse  # noqa: E402

"""Keras layers: hidden blocks, fixed feedback (projections, feedback-alignment dense and conv), invertible dense,
learned inverses, GLE dynamics, PEPITA's input feedback."""

from bpfree.layers.block import ACTIVATIONS, DenseBlock, activation_function
from bpfree.layers.conv import ConvBlock, FeedbackAlignmentConv2D
from bpfree.layers.feedback import (BW_INITS, FeedbackAlignmentDense, FeedbackProjection, call_dense,
                                    feedback_initializer)
from bpfree.layers.gle import GLEDense
from bpfree.layers.input_feedback import InputFeedback
from bpfree.layers.invertible import InvertibleDense
from bpfree.layers.learned_inverse import LearnedInverse
from bpfree.layers.shortcut import ShortcutA

__all__ = ["ACTIVATIONS", "BW_INITS", "ConvBlock", "DenseBlock", "FeedbackAlignmentConv2D", "FeedbackAlignmentDense", "FeedbackProjection", "GLEDense",
           "InputFeedback", "InvertibleDense", "LearnedInverse", "ShortcutA", "activation_function", "call_dense",
           "feedback_initializer"]

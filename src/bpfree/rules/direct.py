"""What the direct rules share (DFA, DRTP, local losses): a fixed random projection of every hidden layer.

Each hidden layer l has a fixed random B_l of shape (units_l, output_dim) (`FeedbackProjection`),
p_l = h_l B_l, through which the rule delivers its error signal: the gradient of the rule's surrogate
with respect to p_l, carried back through B_l, is (signal) B_lᵀ. Block inputs are detached, so
every hidden layer learns from its own term only.

Alignment: with e_l = e B_lᵀ reaching layer l, the forward weights align with
    W_l ~ B_{l−1} B_lᵀ (l = 2..L),   W_{L+1} ~ B_L,
the targets of the ``weight_alignment`` tracker and of ``init_fw_weight_aligned``.
"""

import keras

from bpfree.layers.feedback import FeedbackProjection, feedback_seed
from bpfree.rules.base import Rule


class DirectFeedbackRule(Rule):
    detach_blocks = True

    def projections(self, config):
        return [FeedbackProjection(config.output_dim, bw_init=config.bw_init, seed=feedback_seed(config.seed, l),
                                   name=f"feedback_{l}")
                for l in range(1, len(config.arch) + 1)]

    def alignment_targets(self, model):
        B = [keras.ops.convert_to_tensor(p.feedback) for p in model.projections]
        targets = {l + 1: keras.ops.matmul(B[l - 1], keras.ops.transpose(B[l])) for l in range(1, len(B))}
        targets[len(B) + 1] = B[-1]
        return targets

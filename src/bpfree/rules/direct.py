"""What the direct rules share (DFA, DRTP, local losses): a fixed random projection of every hidden layer.

Each hidden layer l has a fixed random B_l of shape (units_l, output_dim) (`FeedbackProjection`),
p_l = h_l B_l, through which the rule delivers its error signal: the gradient of the rule's surrogate
with respect to p_l, carried back through B_l, is (signal) B_lᵀ. Block inputs are detached, so
every hidden layer learns from its own term only.

Alignment: with e_l = e B_lᵀ reaching layer l, the forward weights align with
    W_l ~ B_{l−1} B_lᵀ (l = 2..L),   W_{L+1} ~ B_L,
the targets of the ``weight_alignment`` tracker and of ``init_fw_weight_aligned``.

On a convolution block, h_l is the (pooled) feature map, flattened: B_l has H·W·C rows. The hparam
``projection_pool`` = k > 1 projects it after a fixed k×k average pooling instead (k² times fewer rows:
the memory the full matrices of a VGG's early layers take is what runs DRTP out of memory; official
DRTP repository, issue 3); dense layers are always projected whole. Alignment targets exist only where
their shapes are a kernel's (dense layers, unpooled).

Conv blocks that pool (dfa, drtp, sdfa: `ProjectedSignalRule`): ``project_before_pool=False`` (the
default) projects the pooled map, so in a max pooling only each window's maximum receives the signal
(biotorch's DFA on conv nets, and bpfree's choice so far); ``project_before_pool=True`` projects the map
before the block's poolings (after its activation and dropout), B_l with H·W·C rows of the unpooled map
(÷ ``projection_pool``² when that is > 1: the average pooling composes with it), so every position of each
pooling window receives its own signal: the official DRTP code (ChFrenkel/DirectRandomTargetProjection,
models.py `CNN_block`: conv → activation → training hook → max pool), for DFA, sDFA and DRTP alike.
Blocks that do not pool are projected the same either way; a network none of whose blocks pools
refuses ``project_before_pool=True`` (it would change nothing), and so does `bpfree.convert` (a converted
block's activity is the end of its chain, poolings included).
"""

import keras

from bpfree import seeds
from bpfree.layers.feedback import FeedbackProjection
from bpfree.arch import ConvSpec
from bpfree.rules.base import Rule, flag, whole


class DirectFeedbackRule(Rule):
    detach_blocks = True
    convolutional = True
    project_before_pool = False  # the local losses (cce, mse) project the block's output

    def __init__(self, projection_pool=1):
        self.projection_pool = whole(self.name, "projection_pool", projection_pool, lambda v: v >= 1,
                                     "a pooling size ≥ 1 (1: the full feature map)")

    def projections(self, config):
        return [FeedbackProjection(config.output_dim, bw_init=config.bw_init, seed=seeds.feedback(config.seed, l),
                                   pool=self.projection_pool if not isinstance(block, int) else 1,
                                   name=f"feedback_{l}")
                for l, block in enumerate(config.arch, start=1)]

    def alignment_targets(self, model):
        # Shapes first: B_{l−1} B_lᵀ of two conv maps would be (H·W·C)² floats (gigabytes on a VGG) and
        # is never a kernel's shape.
        B = [p.feedback for p in model.projections]
        kernels = [tuple(layer.kernel.shape) for layer in model.weighted_layers]
        targets = {l + 1: keras.ops.matmul(B[l - 1], keras.ops.transpose(B[l])) for l in range(1, len(B))
                   if (B[l - 1].shape[0], B[l].shape[0]) == kernels[l]}
        if tuple(B[-1].shape) == kernels[-1]:
            targets[len(B) + 1] = keras.ops.convert_to_tensor(B[-1])
        return targets


class ProjectedSignalRule(DirectFeedbackRule):
    """dfa, drtp, sdfa: a direct rule with the choice of where a pooling block is projected
    (``project_before_pool``, the module docstring)."""

    def __init__(self, projection_pool=1, project_before_pool=False):
        super().__init__(projection_pool)
        self.project_before_pool = flag(self.name, "project_before_pool", project_before_pool)

    def validate(self, config):
        if self.project_before_pool and not any(isinstance(b, ConvSpec) and b.pools for b in config.arch):
            raise ValueError(f"{self.name}'s project_before_pool=True changes nothing on a network without a pooling "
                             "convolution block (valid there: False, the default).")

"""The standard adversary heads, registered through ``zoo_adversary_heads()`` like a third-party plugin.

    >>> from zoo import get_adversary_head
    >>> head = get_adversary_head("mlp", num_classes=6, layer="listener", hidden=(64,))
    >>> logits = head(hidden_sequence, mask=frame_mask)   # (batch, time, dim) -> (batch, 6)

A head is a small ``keras.Model`` that reads a named hidden layer of the main model (``head.layer``),
pools a sequence over its valid frames, and predicts a nuisance label (speaker, noise type, domain)
as logits. The ``minimax`` train step trains heads to minimise E_adversary = −ln ŝ_true while the
main net is trained to defeat them.

Heads: ``mlp`` (pooling, ReLU hidden layers, logits), ``linear`` (pooling, logits: multinomial
logistic regression, the same family as the fixed speaker probe) and ``centroid`` (no weights: a
nearest-class-centroid classifier re-fitted from running means, so it cannot be fooled by an encoder
that merely moves the nuisance away from where a trained head looks; fitted by ``fit_batch``) and
``lda`` (the same with a running within-class covariance: linear discriminant analysis).
"""
from zoo import hookimpl


def _factory(kind):
    def make(**params):
        from zoo_plugins.adversary_heads.heads import AdversaryHead, CentroidHead

        if kind in ("centroid", "lda"):
            return CentroidHead(**params, whiten=kind == "lda")
        if kind == "linear":
            if params.get("hidden"):
                raise ValueError("the linear head has no hidden layers; use 'mlp'")
            params["hidden"] = ()
        return AdversaryHead(**params)

    make.__name__ = kind
    make.__doc__ = f"Build the {kind!r} adversary head (zoo_plugins.adversary_heads.heads.AdversaryHead)."
    return make


@hookimpl
def zoo_adversary_heads():
    return {kind: _factory(kind) for kind in ("mlp", "linear", "centroid", "lda")}

"""Export trained models as SavedModels in TF Serving's layout, with named signatures per family.

    MODELS_DIR/models.config                  model_config_list for ``tensorflow_model_server``
    MODELS_DIR/<name>/<version>/saved_model.pb, variables/

Signatures (inputs -> outputs; every input has a leading batch dimension unless noted):

* classifier: ``serving_default`` images -> probabilities, classes; ``fgsm`` images, labels, eps
  (one per image) -> adversarial_images (x + ε·sign ∂E/∂x, E = −ln ŷ_label, clipped to [0, 1]);
* autoencoder: ``reconstruct`` (also ``serving_default``), ``encode`` images -> codes,
  ``decode`` codes -> images;
* vae / vaegan: ``reconstruct`` (also ``serving_default``), ``encode`` images -> mean, stddev of
  q(z|x), ``decode`` z -> images (the mean of p(x|z)), ``sample`` n, seed (scalars) -> images;
  vaegan adds ``generate`` (= ``sample``);
* gan: ``generate`` (also ``serving_default``) n, seed (scalars) -> images;
* las: ``serving_default`` waveforms (batch, samples) float32 at 8 kHz, zero-padded -> transcripts
  (strings), token_ids; decoding (greedy, or beam search for ``beam_width`` > 1) runs in the graph.

The SavedModel holds only TensorFlow functions and variables: loading it needs TensorFlow alone,
not ``zoo`` (nor Keras). Writing is atomic: the version is written into a hidden temporary directory
next to it and renamed into place only when complete, so an interrupted or failed export leaves the
versions already there untouched and never a half-written one (TF Serving ignores non-numeric names).

Concurrent exports into one models directory are safe: the version is chosen under an exclusive
lock (``fcntl.flock`` on ``MODELS_DIR/.zoo-export.lock``) and reserved by creating its temporary
directory (``.tmp-<version>-<pid>``) before the lock is released, so two exports never pick the
same version; the final rename and the rewrite of ``models.config`` happen under the lock too.

The family (which signatures) comes from the ModelSpec (``export`` passes it), so an outside
plugin's plain ``keras.Model`` classifier exports like the built-in ConvNet.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
from pathlib import Path

from zoo.errors import ConfigError

CONFIG_FILE = "models.config"
LOCK_FILE = ".zoo-export.lock"
_TMP_PREFIX = ".tmp-"
#: TF Serving's version numbers are int64.
MAX_VERSION = 2**63 - 1


def versions(model_dir) -> list[int]:
    """The version numbers present under ``MODELS_DIR/<name>`` (numeric directory names), sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def signatures_for(model, family: str | None = None) -> dict:
    """``{signature name: concrete function}``: the model's own ``export_signatures()`` when it has
    one (a new family needs no change here), else those of ``family`` (default: ``model.family``;
    see the module docstring)."""
    import tensorflow as tf

    if hasattr(model, "export_signatures"):  # zoo.protocols.Exportable: a family names its own
        return {name: fn.get_concrete_function() for name, fn in model.export_signatures().items()}
    family = family or getattr(model, "family", None)
    builders = {"classifier": _classifier, "autoencoder": _autoencoder, "vae": _vae, "vaegan": _vaegan,
                "gan": _gan, "las": _las}
    if family not in builders:
        raise ConfigError(f"cannot export a {type(model).__name__} (family {family!r}); "
                          f"exportable families: {', '.join(sorted(builders))}")
    functions = builders[family](model, tf)
    return {name: fn.get_concrete_function() for name, fn in functions.items()}


def export_model(model, out, name: str, version: int | None = None, *, base_path: str = "/models",
                 family: str | None = None) -> Path:
    """Write ``model`` to ``out/<name>/<version>/`` atomically and update ``out/models.config``.

    ``version`` defaults to one more than the newest version present or being written by another
    export (1 if none); an existing version is never overwritten. ``base_path`` is where TF Serving
    sees ``out`` (the container mount). ``family`` selects the signatures (default ``model.family``).
    """
    import tensorflow as tf

    _check_request(name, version, base_path)
    out = Path(out)
    model_dir = out / name
    with _locked(out):
        model_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(model_dir)
        present = versions(model_dir)
        reserved = _reserved(model_dir)
        if version is None:
            version = max(present + list(reserved), default=0) + 1
            if version > MAX_VERSION:
                raise ConfigError(f"{model_dir}: the newest version is already {version - 1}, TF Serving's "
                                  f"largest; give --version explicitly")
        final = model_dir / str(version)
        if final.exists():
            raise ConfigError(f"{final} already exists; versions present: {present}; omit --version for the next one")
        if version in reserved:
            raise ConfigError(f"{final} is being written by another export (process {reserved[version]}); "
                              f"omit --version for the next one")
        tmp = model_dir / f"{_TMP_PREFIX}{version}-{os.getpid()}"
        tmp.mkdir()  # the reservation: other exports see this version as taken
    try:
        module = tf.Module()
        # the variables, tracked so they are saved; the functions capture them
        module.model_variables = list(model.variables)
        signatures = signatures_for(model, family)
        for key, fn in signatures.items():
            setattr(module, f"signature_{key}", fn)
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        with _locked(out):
            os.replace(tmp, final)  # the commit: a version directory appears complete or not at all
            write_models_config(out, base_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


@contextlib.contextmanager
def _locked(out: Path):
    """An exclusive ``flock`` on ``out/.zoo-export.lock`` (released when the process dies)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reserved(model_dir: Path) -> dict[int, int]:
    """``{version: pid}`` of the temporaries of exports still running (dead ones are removed first)."""
    out = {}
    for path in model_dir.glob(f"{_TMP_PREFIX}*"):
        parts = path.name[len(_TMP_PREFIX):].rsplit("-", 1)
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            out[int(parts[0])] = int(parts[1])
    return out


def _check_request(name, version, base_path) -> None:
    """The model name, version and base path of an export, checked before anything is built."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"model name {name!r} must be letters, digits, '_', '.', '-' (a directory name)")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                or not 1 <= version <= MAX_VERSION):
        raise ConfigError(f"--version must be an integer in 1..{MAX_VERSION} (TF Serving's int64), got {version!r}")
    _check_base_path(base_path)


def _check_base_path(base_path) -> None:
    """A base path goes into models.config as a protobuf text-format string: refuse what no escaping
    makes sensible (control characters such as a newline); quotes and backslashes are escaped."""
    if not isinstance(base_path, str) or not base_path:
        raise ConfigError(f"--base-path must be a non-empty path, got {base_path!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in base_path):
        raise ConfigError(f"--base-path {base_path!r} contains a control character; give a plain path")


def _text_format_string(value: str) -> str:
    """``value`` as a double-quoted protobuf text-format string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_models_config(out, base_path: str = "/models") -> Path:
    """``out/models.config`` listing every exported model under ``out`` (atomically replaced)."""
    from zoo.files import atomic_write_text

    out = Path(out)
    entries = []
    for model_dir in sorted(p for p in out.iterdir() if p.is_dir() and versions(p)):
        entries.append("  config {\n"
                       f"    name: {_text_format_string(model_dir.name)}\n"
                       f"    base_path: {_text_format_string(base_path.rstrip('/') + '/' + model_dir.name)}\n"
                       "    model_platform: \"tensorflow\"\n"
                       "  }\n")
    path = out / CONFIG_FILE
    atomic_write_text(path, "model_config_list {\n" + "".join(entries) + "}\n")
    return path


def export(name: str, weights, out, version: int | None = None, *, model_name: str | None = None,
           base_path: str = "/models") -> Path:
    """Export the model trained into ``weights`` (``zoo train --out``) as ``out/<name>/<version>``."""
    from zoo.api import load, resolve

    _check_request(model_name or name, version, base_path)
    spec, _ = resolve(name)
    model = load(name, weights=weights, compile=False)
    return export_model(model, out, model_name or name, version, base_path=base_path, family=spec.family)


def signature_names(path) -> list[str]:
    """The signature names of the SavedModel at ``path`` (read from saved_model.pb, nothing executed)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    return sorted(k for k in proto.meta_graphs[0].signature_def if not k.startswith("__"))


def _remove_stale_temporaries(model_dir: Path) -> None:
    """Temporary directories of exports whose process is gone (killed mid-write)."""
    for path in model_dir.glob(f"{_TMP_PREFIX}*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the signatures of each family -----------------------------------------------------------------
def _input_shape(model) -> tuple:
    """The shape of one input: ``model.image_shape`` (zoo's models) or the Keras input shape (any
    outside plugin's ``keras.Model``)."""
    shape = getattr(model, "image_shape", None)
    if shape is None:
        shape = model.input_shape[1:] if hasattr(model, "input_shape") else model.inputs[0].shape[1:]
    return tuple(shape)


def _image_spec(model, tf, name="images"):
    return tf.TensorSpec((None, *_input_shape(model)), tf.float32, name=name)


def _classifier(model, tf):
    images = _image_spec(model, tf)

    def logits_of(x):
        if hasattr(model, "logits"):
            return tf.cast(model.logits(x, training=False), tf.float32)
        out = tf.cast(model(x, training=False), tf.float32)
        return out if getattr(model, "output_kind", "softmax") == "logits" else tf.math.log(tf.maximum(out, 1e-30))

    @tf.function(input_signature=[images])
    def serving_default(images):
        logits = logits_of(images)
        return {"probabilities": tf.nn.softmax(logits, axis=-1), "classes": tf.argmax(logits, axis=-1)}

    @tf.function(input_signature=[images, tf.TensorSpec((None,), tf.int32, name="labels"),
                                  tf.TensorSpec((None,), tf.float32, name="eps")])
    def fgsm(images, labels, eps):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits_of(images))
        step = tf.reshape(eps, [-1, *([1] * (len(_input_shape(model))))]) * tf.sign(tape.gradient(loss, images))
        return {"adversarial_images": tf.clip_by_value(images + step, 0.0, 1.0)}

    return {"serving_default": serving_default, "fgsm": fgsm}


def _autoencoder(model, tf):
    images = _image_spec(model, tf)
    codes = tf.TensorSpec((None, model.latent_dim), tf.float32, name="codes")

    @tf.function(input_signature=[images])
    def reconstruct(images):
        return {"reconstructions": model.decode(model.encode(images, training=False), training=False)}

    @tf.function(input_signature=[images])
    def encode(images):
        return {"codes": model.encode(images, training=False)}

    @tf.function(input_signature=[codes])
    def decode(codes):
        return {"images": model.decode(codes, training=False)}

    return {"serving_default": reconstruct, "reconstruct": reconstruct, "encode": encode, "decode": decode}


def _count_and_seed(tf):
    return [tf.TensorSpec((), tf.int32, name="n"), tf.TensorSpec((), tf.int32, name="seed")]


def _vae(model, tf):
    images = _image_spec(model, tf)
    latent = tf.TensorSpec((None, model.latent_dim), tf.float32, name="z")

    @tf.function(input_signature=[images])
    def reconstruct(images):
        return {"reconstructions": model.decode(model.encode(images).mean()).mean()}

    @tf.function(input_signature=[images])
    def encode(images):
        posterior = model.encode(images)
        return {"mean": posterior.mean(), "stddev": posterior.stddev()}

    @tf.function(input_signature=[latent])
    def decode(z):
        return {"images": model.decode(z).mean()}

    @tf.function(input_signature=_count_and_seed(tf))
    def sample(n, seed):
        # the model's sample(n, seed): z ~ N(0, I) drawn statelessly from the seed
        z = tf.random.stateless_normal(tf.stack([n, model.latent_dim]), seed=tf.stack([seed, 0]))
        return {"images": model.decode(z).mean()}

    return {"serving_default": reconstruct, "reconstruct": reconstruct, "encode": encode, "decode": decode,
            "sample": sample}


def _vaegan(model, tf):
    functions = _vae(model, tf)
    functions["generate"] = functions["sample"]
    return functions


def _gan(model, tf):
    @tf.function(input_signature=_count_and_seed(tf))
    def generate(n, seed):
        z = tf.random.stateless_normal(tf.stack([n, model.latent_dim]), seed=tf.stack([seed, 0]))
        return {"images": model.generator(z, training=False)}

    return {"serving_default": generate, "generate": generate}


def _las(model, tf):
    from zoo.data.audio import EOS, VOCABULARY

    # id -> character; <pad>, <sos>, <eos> print as nothing (ids_to_text's rule)
    table = tf.constant(["" if i <= EOS else c for i, c in enumerate(VOCABULARY)])

    @tf.function(input_signature=[tf.TensorSpec((None, None), tf.float32, name="waveforms")])
    def serving_default(waveforms):
        memory, mask = model.listen(waveforms)
        if model.beam_width > 1:
            ids = model.beam_decode(memory, mask, beam_width=model.beam_width)
        else:
            ids = model.greedy_decode(memory, mask)
        ids = tf.cast(ids, tf.int32)
        before_eos = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, EOS), tf.int32), axis=1), 0)
        chars = tf.where(before_eos, tf.gather(table, ids), "")
        return {"transcripts": tf.strings.reduce_join(chars, axis=1), "token_ids": ids}

    return {"serving_default": serving_default}

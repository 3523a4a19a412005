"""Install the zoo core (`zoo`) and its standard plugins (`zoo_plugins`, from the `plugins/` folder).

The standard plugins are registered through the same `zoo` entry-point group a third-party plugin
uses, so `ZOO_DISABLE_PLUGIN_AUTOLOAD=1` and `ZOO_BLOCKED_PLUGINS` treat them like any other plugin.
"""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildWithRegistry(build_py):
    """Ship the top-level registry.yaml inside the installed `zoo` package."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "zoo" / "registry.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HERE / "registry.yaml", target)


plugin_packages = ["zoo_plugins"] + [
    "zoo_plugins." + p for p in find_packages("plugins")
]

setup(
    name="zoo",
    version="0.1.0",
    description="A Keras 3 model zoo for adversarial examples, adversarial training, "
    "autoencoders, VAEs and GANs, with a pluggy plugin system",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["zoo", "zoo.*"]) + plugin_packages,
    package_dir={"zoo_plugins": "plugins"},
    # The shipped packs (tools/make_packs.py writes zoo/packs/shipped/<preset>/): every file type a
    # pack may hold (zoo.packs.card.ALLOWED_SUFFIXES), so `pip install .` installs them whole.
    # The bundled samples `zoo demo` shows the packs on (tools/make_samples.py writes them, with
    # their attribution: MNIST CC BY-SA 3.0, FSDD CC BY-SA 4.0).
    package_data={"zoo.packs.shipped": ["*/*.json", "*/*.h5", "*/*.md", "*/*.txt", "*/*.png"],
                  "zoo.data.samples": ["*.npz", "*.md", "fsdd/*.wav"]},
    cmdclass={"build_py": BuildWithRegistry},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        # TFP >= 0.24 refuses to import its TensorFlow substrate without tf-keras; the `tf` extra
        # pulls it in. The zoo itself only uses Keras 3 and tfp.distributions, never tf_keras.
        "tensorflow-probability[tf]>=0.24",
        "tensorflow-datasets>=4.9",
        "tensorboard>=2.16",
        "pluggy>=1.3",
        "pyyaml>=6.0",
        "scikit-learn>=1.3",
        "numpy>=1.26",
        "pillow>=9.0",
    ],
    extras_require={
        "test": ["pytest>=7.4", "pytest-xdist>=3.0", "hypothesis>=6.80"],
        "bench": ["cleverhans>=4.0", "adversarial-robustness-toolbox>=1.17"],
    },
    entry_points={
        "console_scripts": ["zoo = zoo.cli:main"],
        # The standard plugins, one entry point per module of plugins/.
        "zoo": [
            "attacks = zoo_plugins.attacks",
            "adversary_heads = zoo_plugins.adversary_heads",
            "augmentations = zoo_plugins.augmentations",
        ],
    },
)

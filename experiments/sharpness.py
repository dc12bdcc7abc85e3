"""Study 5: adversarial training sharpens the weight loss landscape (Yamada et al. 2021; AWP).

    python experiments/sharpness.py --config configs/sharpness.py:small --workdir runs/sharpness

Profiles (the ``:profile`` suffix): smoke, small (default; no download), medium (MNIST and a
CIFAR-10 subset from the data dir), paper (PreActResNet-18 on CIFAR-10; GPU). Any config field
can be set on the command line, e.g. ``--config.data_dir=../shared/data``,
``--config.logistic.datasets="('toy',)"``, ``--config.network.awp_gamma=0.005`` or
``--config.network.train.num_epochs=10`` (see ``configs/sharpness.py`` for the fields).
The default workdir is ``runs/sharpness/<profile>``; a rerun on the same workdir resumes.

What the study measures and claims: ``python -c "from jadv.studies import sharpness;
help(sharpness.run)"``.
"""
from jadv.studies import sharpness
from jadv.studies.common import study_app

if __name__ == "__main__":
    study_app(sharpness, __file__)

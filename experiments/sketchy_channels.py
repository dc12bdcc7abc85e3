"""Study 1, sketchy channels: conv1 colour channels of adversarially trained CNNs (Kaur, Cohen & Lipton).

    python experiments/sketchy_channels.py --config configs/sketchy_channels.py:small \\
        --workdir runs/sketchy_channels
    python experiments/sketchy_channels.py --config configs/sketchy_channels.py:medium \\
        --config.data_dir=../shared/data --workdir runs/sk_medium

Profiles: smoke, small (the default: colored digits, no download), medium, paper. Fields of the
config are set with ``--config.<field>=...``; the flags of the old script are now:

* one dataset of the profile: ``--config.datasets=colored_digits`` (several:
  ``--config.datasets="('colored_digits', 'cifar10')"``);
* its epochs: ``--config.data.colored_digits.train.num_epochs=30``;
* its training (and evaluation) radii: ``--config.data.colored_digits.eps.linf=0.0156863`` and
  ``--config.data.colored_digits.eps.l2=0.5``.

Without ``--workdir`` the outputs go to ``runs/sketchy_channels/<profile>``. The study itself
(what it measures, what it writes) is documented in :func:`jadv.studies.sketchy_channels.run`.
"""
from jadv.studies import sketchy_channels
from jadv.studies.common import study_app

if __name__ == "__main__":
    study_app(sketchy_channels, __file__)

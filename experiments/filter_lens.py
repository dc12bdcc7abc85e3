"""Study 4: robust vs standard models through the lens of their 3x3 conv filters
(Gavrikov & Keuper 2022, arXiv:2204.02481). The study is ``jadv.studies.filter_lens``; see
``help(jadv.studies.filter_lens.run)`` for what it measures and writes.

    python experiments/filter_lens.py --config configs/filter_lens.py:small --workdir runs/filter_lens
    python experiments/filter_lens.py --config configs/filter_lens.py:medium --config.data_dir=../shared/data

Profiles (``configs/filter_lens.py``): smoke, small (the default), medium, paper. Any config field
is set with ``--config.FIELD=VALUE``, e.g. ``--config.train.num_epochs=30``. What the old flags did:

- extra models drawn in the depth figure (was ``--import_workdir KIND:DIR``):
  ``--config.import_workdirs="('robust:runs/wrn_robust',)"``
- the pair taken from two workdirs instead of trained (was ``--pair_workdir KIND:DIR``, twice):
  ``--config.pair_workdirs="('standard:runs/wrn_standard', 'robust:runs/wrn_robust')"``
- the data dir (was ``--data_dir D``): ``--config.data_dir=D``

The default workdir is ``runs/filter_lens/<profile>``.
"""
from jadv.studies import filter_lens
from jadv.studies.common import study_app

if __name__ == "__main__":
    study_app(filter_lens, __file__)

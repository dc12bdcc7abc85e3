"""Study 3: intriguing properties of adversarial training at scale (Xie & Yuille 2020; AdvProp).

    python experiments/scale_properties.py [--config configs/scale_properties.py:small] \\
        [--workdir runs/scale_properties/small] [--config.data_dir=DIR] [--config.eps=0.1] \\
        [--config.train.num_epochs=3] [--config.eval.pgd_steps=100] [--config.eval.progress=false]

The study is library code, :func:`jadv.studies.scale_properties.run` (``python -c "from jadv.studies
import scale_properties; help(scale_properties.run)"``); its config file, with the profiles smoke /
small / medium / paper and every field, is ``configs/scale_properties.py``. Any field is set with
``--config.<field>=...``, e.g. ``--config.models.r50.objective.ratio=0.25`` or
``--config.eval.autoattack_examples=0``. A rerun on the same workdir reuses finished models and
evaluations. Prints one line per claim.
"""
from jadv.studies import scale_properties
from jadv.studies.common import study_app

if __name__ == "__main__":
    study_app(scale_properties, __file__)

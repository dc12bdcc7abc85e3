"""Config of study 5 (experiments/sharpness.py), by profile: smoke, default, cpu, full."""
import ml_collections

PROFILES = ("smoke", "default", "cpu", "full")


def get_config(profile: str = "default"):
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    c = ml_collections.ConfigDict()
    c.profile = profile
    c.data_dir = ml_collections.config_dict.placeholder(str)
    c.datasets = {"smoke": ("toy",), "default": ("toy", "digits"), "cpu": ("toy", "digits", "mnist"),
                  "full": ("toy", "digits", "mnist")}[profile]
    c.toy_n = 400 if profile == "smoke" else 4000
    c.n_max = None
    # The toy is not separable (unregularised minimiser exists); digits/MNIST 5-vs-7 are (nearly)
    # separable, so their standard minimiser diverges without weight decay.
    c.l2_reg = {"toy": 0.0, "digits": 1e-3, "mnist": 1e-3}
    c.iters = 30 if profile == "smoke" else 300
    c.eps_grid = {
        "toy": {"l2": (0.0, 0.2, 0.4, 0.6, 0.8), "linf": (0.0, 0.05, 0.1, 0.15)},
        "digits": {"l2": (0.0, 0.25, 0.5, 1.0, 1.5), "linf": (0.0, 0.01, 0.02, 0.05)},
        "mnist": {"l2": (0.0, 0.25, 0.5, 1.0, 1.5), "linf": (0.0, 0.01, 0.02, 0.05)},
    }
    return c

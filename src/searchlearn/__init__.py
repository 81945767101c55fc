"""searchlearn: policy initialization, reward, search and learning — the o1 roadmap (Zeng et al., 2024) in one loop."""

__version__ = "0.1.0"

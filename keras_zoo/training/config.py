"""Training configuration (a plain dataclass; importing it does not import TensorFlow)."""
import dataclasses


@dataclasses.dataclass
class FitConfig:
    """The single-device run of `keras-zoo train` on a bundled dataset. Defaults are the main job."""
    model: str = "tinynet_e"
    dataset: str = "digits"
    resolution: int = 32
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    shift_fraction: float = 0.0625  # random translation of up to this fraction of the image side
    # NOTE: BatchNorm momentum 0.9 instead of the papers' 0.99: a run of ~700 steps is too short for
    # 0.99 moving averages to settle. Command-line overrides take precedence.
    model_overrides: dict = dataclasses.field(default_factory=lambda: {"bn_momentum": 0.9})
    seed: int = 0
    output_dir: str = "runs/main"

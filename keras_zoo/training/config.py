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
    seed: int = 0
    output_dir: str = "runs/main"

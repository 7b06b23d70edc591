"""The machine a run measured on: figures only compare within one machine."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    """CPU, cores, Python and Java of this run."""

    cpu: str
    cores: int
    python: str
    java: str
    system: str
    load_average: tuple[float, float, float]

    def describe(self) -> str:
        """One line for the report."""
        load = ", ".join(f"{value:.2f}" for value in self.load_average)
        return (
            f"{self.cpu}, {self.cores} cores; Python {self.python}; {self.java}; {self.system}; "
            f"load average at start {load}"
        )

    def as_dict(self) -> dict[str, object]:
        """The fields the JSON line carries."""
        return {"cpu": self.cpu, "cores": self.cores, "python": self.python}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _java_version() -> str:
    try:
        answer = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "java unknown"
    lines = (answer.stderr or answer.stdout).strip().splitlines()
    return lines[0].strip() if lines else "java unknown"


def this_machine() -> Machine:
    """Describe the machine this process runs on."""
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 1,
        python=f"{platform.python_implementation()} {platform.python_version()}",
        java=_java_version(),
        system=f"{platform.system()} {platform.release()} {platform.machine()}",
        load_average=os.getloadavg(),
    )

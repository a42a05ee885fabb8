"""Ship ``templates/`` (page partials, CSS, fonts) inside the wheel as ``cxpipeline/templates``.

The metadata is in pyproject.toml; this only adds the templates to non-editable builds, where
``cxpipeline.report.render`` finds them beside the package. An editable install (and a source
checkout) uses ``templates/`` at the project root directly.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithTemplates(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = Path(__file__).resolve().parent / "templates"
        if not (source / "board_pack.html").is_file():
            raise SystemExit(f"templates/ not found at {source}: the board pack cannot be built without it")
        shutil.copytree(source, Path(self.build_lib) / "cxpipeline" / "templates", dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithTemplates})

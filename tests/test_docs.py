"""The docs build as a strict site, the README stays a front door, and the project cites its own docs."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="mkdocs is in the test extra")
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr  # a broken link, anchor or unlisted page fails here
    return out


def test_docs_build_strictly(site):
    assert os.path.isfile(os.path.join(site, "architecture", "index.html"))


def test_readme_opens_with_the_two_commands_and_stays_short():
    text = read(README)
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert blocks[0].strip().splitlines() == ["pip install . && simmine build --metric jaccard --alpha 0.05",
                                              "pip install -e '.[test]' && pytest"]
    assert text.index("```bash") < 20
    assert len(text.splitlines()) < 250


def test_readme_links_reach_built_pages(site):
    for target in re.findall(r"\]\((docs/[^)]+)\)", read(README)):
        page, _, anchor = target.partition("#")
        assert os.path.isfile(os.path.join(ROOT, page)), target
        html = os.path.join(site, page[len("docs/"):-3].replace("index", ""), "index.html")
        if anchor:
            assert f'id="{anchor}"' in read(html), target


def test_every_headline_figure_names_its_command_and_page():
    text = read(README)
    section = text[text.index("## Headline figures"):]
    section = section[:section.index("\n## ", 3)]
    rows = [r for r in section.splitlines() if r.startswith("| ") and not r.startswith("| figure")]
    assert rows
    for row in rows:
        figure, command, page = [c.strip() for c in row.strip("|").split(" | ")]
        assert re.search(r"\d", figure), row
        assert re.match(r"`python (benchmarks|examples)/\w+\.py", command), row
        assert re.match(r"\[\w+\]\(docs/\w+\.md#[\w-]+\)", page), row


def test_the_project_cites_its_own_docs():
    cited = set()
    for top in ("simmine", "csrc", "tests", "docs", "benchmarks", "examples"):
        for base, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if name.endswith((".py", ".hpp", ".cpp", ".cu", ".md")) and name != "test_docs.py":
                    text = read(os.path.join(base, name))
                    assert "SPEC" not in text, os.path.join(base, name)  # a document users never see
                    cited.update(re.findall(r"docs/(\w+\.md)", text))
    assert cited and all(os.path.isfile(os.path.join(ROOT, "docs", c)) for c in cited), cited

"""docs/openapi.yaml: a valid OpenAPI 3.0 document (checked against the OpenAPI
Initiative's schema that Debian's openapi-specification ships, with python3-jsonschema),
describing exactly the routes of src/api/api.c, and served as /api/v1/openapi.json."""

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "openapi.yaml"
ROUTES = REPO / "src" / "api" / "api.c"
OAS30_SCHEMA = Path("/usr/share/openapi-specification/schemas/v3.0/schema.json")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SCHEMA_TYPES = {"string", "number", "integer", "boolean", "array", "object"}


@pytest.fixture(scope="module")
def doc():
    return yaml.safe_load(DOC.read_text())


def test_the_document_is_valid_openapi_3_0(doc):
    import jsonschema
    if not OAS30_SCHEMA.exists():
        pytest.fail(f"{OAS30_SCHEMA} is missing: scripts/install-deps installs "
                    "openapi-specification")
    assert doc["openapi"].startswith("3.0."), doc["openapi"]
    validator = jsonschema.Draft4Validator(json.loads(OAS30_SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
              for e in validator.iter_errors(doc)]
    assert not errors, "\n".join(errors)


def schemas(node, path=()):
    """Every Schema Object of the document, with where it is."""
    if isinstance(node, dict):
        if "schema" in node and isinstance(node["schema"], dict):
            yield from schema_tree(node["schema"], path + ("schema",))
        for k, v in node.items():
            if k in ("schema", "schemas"):
                if k == "schemas":
                    for name, s in v.items():
                        yield from schema_tree(s, path + ("schemas", name))
                continue
            yield from schemas(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from schemas(v, path + (str(i),))


def schema_tree(s, path):
    if not isinstance(s, dict):
        return
    yield path, s
    for k in ("items", "not", "additionalProperties"):
        if isinstance(s.get(k), dict):
            yield from schema_tree(s[k], path + (k,))
    for k in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(k, [])):
            yield from schema_tree(sub, path + (k, str(i)))
    for name, sub in (s.get("properties") or {}).items():
        yield from schema_tree(sub, path + ("properties", name))


def test_schema_objects_use_only_3_0_forms(doc):
    # the OAI schema lets a Schema Object's keywords through loosely; 3.0 has no type
    # lists (3.1's [string, "null"]) and nullable means nothing without a type
    bad = []
    for path, s in schemas(doc):
        where = "/".join(path)
        if "type" in s and s["type"] not in SCHEMA_TYPES:
            bad.append(f"{where}: type {s['type']!r} is not a 3.0 type")
        if "nullable" in s and "type" not in s:
            bad.append(f"{where}: nullable without a type")
        if "$ref" in s and len(s) > 1:
            bad.append(f"{where}: siblings of $ref are ignored in 3.0: {sorted(s)}")
    assert not bad, "\n".join(bad)


def test_every_ref_resolves(doc):
    text = json.dumps(doc)
    missing = []
    for ref in sorted(set(re.findall(r'"\$ref": "#/([^"]+)"', text))):
        node = doc
        for part in ref.split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            missing.append(ref)
    assert not missing, missing


def route_table():
    """(METHOD, path with {} for parameters) of every entry of api_routes[] in api.c."""
    src = ROUTES.read_text()
    table = src[src.index("api_routes[] = {"):]
    table = table[:table.index("};")]
    routes = re.findall(r'\{"([A-Z]+)", "([^"]+)",', table)
    assert len(routes) > 20, "the route table was not found in src/api/api.c"
    return {(m, re.sub(r"\{[^}]+\}", "{}", p)) for m, p in routes}


def test_the_description_and_the_route_table_agree(doc):
    described = set()
    for path, item in doc["paths"].items():
        for method in item:
            if method in METHODS:
                described.add((method.upper(), re.sub(r"\{[^}]+\}", "{}", path)))
    routes = route_table()
    # a GET route also answers HEAD; the description may say so or not
    described -= {("HEAD", p) for m, p in routes if m == "GET"}
    assert not routes - described, f"routes not described: {sorted(routes - described)}"
    assert not described - routes, f"described, not routed: {sorted(described - routes)}"


def test_path_parameters_are_declared(doc):
    bad = []
    for path, item in doc["paths"].items():
        names = set(re.findall(r"\{([^}]+)\}", path))
        for method, op in item.items():
            if method not in METHODS:
                continue
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            declared = set()
            for p in params:
                if "$ref" in p:
                    p = doc["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]
                if p.get("in") == "path":
                    declared.add(p["name"])
            if declared != names:
                bad.append(f"{method.upper()} {path}: declares {sorted(declared)}")
    assert not bad, "\n".join(bad)


def test_the_served_document_is_the_one_in_docs(api):
    r = api("GET", "/api/v1/openapi.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == yaml.safe_load(DOC.read_text())

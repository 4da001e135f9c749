"""Uploads are sniffed and stored under safe names; the OpenAPI says what the API answers."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from files.models import File
from files.services import file_download_headers, safe_filename

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def upload_dir(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path


def upload(client, content, name, content_type):
    return client.post(
        "/api/v1/files/upload",
        {"file": SimpleUploadedFile(name, content, content_type=content_type), "user_id": "u1"},
        format="multipart",
    )


def test_a_png_named_html_is_stored_as_png(api):
    response = upload(api, PNG, "x.html", "image/png")
    assert response.status_code == 201
    assert response.json()["filename"] == "x.png"
    assert response.json()["content_type"] == "image/png"


@pytest.mark.parametrize(
    "content",
    [
        b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'></svg>",
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        b"  <html><body>hi</body></html>",
        b'<?xml version="1.0"?><svg/>',
        PNG,
    ],
)
def test_markup_or_images_sent_as_text_are_refused(api, content):
    for content_type in ("text/plain", "text/markdown", "text/csv"):
        response = upload(api, content, "notes.txt", content_type)
        assert response.status_code == 415, content_type
        assert response.json()["error"]["code"] == "file_content_mismatch"


def test_an_upload_without_a_content_type_is_typed_by_its_content(api):
    response = upload(api, PNG, "cat", "")
    assert response.status_code == 201
    assert response.json()["content_type"] == "image/png"
    assert response.json()["filename"] == "cat.png"
    text = upload(api, b"plain words", "notes", "application/octet-stream")
    assert text.status_code == 201 and text.json()["content_type"] == "text/plain"
    markup = upload(api, b"<html></html>", "page.html", "")
    assert markup.status_code == 415


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd.txt"),
        ("C:\\Users\\me\\report.pdf", "report.txt"),
        ("a\x00b\r\nc.txt", "a_b_c.txt"),
        ("<script>.txt", "script.txt"),
        ("", "upload.txt"),
        (None, "upload.txt"),
        ("x" * 400 + ".txt", "x" * 251 + ".txt"),
    ],
)
def test_safe_filenames(name, expected):
    assert safe_filename(name, content_type="text/plain") == expected


def test_download_headers_never_let_a_browser_render_text():
    text = File(filename="a.txt", content_type="text/plain")
    headers = file_download_headers(file=text)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"].startswith("attachment;")
    image = File(filename="é.png", content_type="image/png")
    assert file_download_headers(file=image)["Content-Disposition"] == (
        "inline; filename*=UTF-8''%C3%A9.png"
    )


# ---- OpenAPI ----


@pytest.fixture
def schema() -> dict:
    response = Client().get("/openapi.json")
    assert response.status_code == 200
    # application/vnd.oai.openapi+json: JSON by default, not YAML.
    assert response["Content-Type"].split(";")[0].endswith("json")
    return json.loads(response.content)


def _ref(schema: dict, ref: str) -> dict:
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_paginated_lists_are_documented_as_pages(schema):
    body = schema["paths"]["/api/v1/files/"]["get"]["responses"]["200"]["content"]
    page = _ref(schema, body["application/json"]["schema"]["$ref"])
    assert set(page["properties"]) == {"next", "previous", "results"}
    assert page["properties"]["results"]["type"] == "array"


def test_every_api_operation_documents_the_error_envelope(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "400" in responses and "404" in responses, (method, path)
            if operation.get("security") != [{}] and path != "/api/v1/health":
                assert "401" in responses, (method, path)
            envelope = responses["400"]["content"]["application/json"]["schema"]["$ref"]
            assert _ref(schema, envelope)["properties"]["error"]


def test_query_parameters_carry_their_bounds(schema):
    params = {p["name"]: p for p in schema["paths"]["/api/v1/files/"]["get"]["parameters"]}
    assert params["limit"]["schema"]["minimum"] == 1
    assert params["limit"]["schema"]["maximum"] == 100
    product = {
        p["name"]: p for p in schema["paths"]["/api/v1/products/search"]["get"]["parameters"]
    }
    assert product["q"]["schema"]["minLength"] == 1 and product["q"]["required"]


@pytest.mark.parametrize("limit", ["abc", "0", "101", "-1", "1.5"])
def test_a_bad_limit_is_a_400(api, limit):
    response = api.get("/api/v1/files/", {"limit": limit})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_blank_product_queries_are_a_400_as_documented(api):
    for q in ("", "   "):
        response = api.get("/api/v1/products/search", {"q": q})
        assert response.status_code == 400, q


def test_the_event_batch_bounds_are_documented(schema):
    body = schema["paths"]["/api/v1/session/events"]["post"]["requestBody"]["content"]
    request = _ref(schema, body["application/json"]["schema"]["$ref"])
    assert request["properties"]["events"]["minItems"] == 1
    assert request["properties"]["events"]["maxItems"] == 500

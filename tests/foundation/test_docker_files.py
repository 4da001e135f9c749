"""The Docker files can't be built here (no engine); check what can be checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_has_the_services_and_points_them_at_each_other():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "redis", "mongodb"} <= set(services)
    assert services["mongodb"]["image"].startswith("mongodb/mongodb-atlas-local")
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["MONGODB_URI"].startswith("mongodb://mongodb:")
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["ENVIRONMENT"] == "production"
    assert "agents" in " ".join(services["worker"]["command"])


def test_dockerfile_installs_production_requirements_only():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile
    assert "requirements-dev.txt" not in dockerfile  # SecantusDB (GPL) stays out of the image
    # The web process is `manage.py serve`: uvicorn with our request read limits
    # (SERVER_* settings) and no proxy headers, as `make run` serves.
    assert "exec python manage.py serve --host 0.0.0.0" in dockerfile
    assert "secantusdb" not in (ROOT / "requirements.txt").read_text()


def test_prometheus_runs_behind_the_metrics_profile_and_scrapes_web_and_worker():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    services = compose["services"]
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["metrics"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert compose["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    worker_env = services["worker"]["environment"]
    assert worker_env["REDIS_URL"].startswith("redis://redis:")  # the shared env is kept
    assert worker_env["PROMETHEUS_MULTIPROC_DIR"] in " ".join(services["worker"]["command"])
    assert "ports" not in services["worker"]  # the worker's metrics port has no token

    config = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    web = jobs["llmplatform-web"]
    assert web["metrics_path"] == "/metrics"
    assert web["authorization"] == {
        "type": "Bearer",
        "credentials_file": "/run/secrets/metrics_token",
    }
    assert web["static_configs"][0]["targets"] == ["web:8000"]
    worker_target = jobs["llmplatform-worker"]["static_configs"][0]["targets"]
    assert worker_target == [f"worker:{worker_env['METRICS_WORKER_PORT']}"]


def test_the_grafana_dashboard_charts_only_series_the_platform_exports():
    from prometheus_client.metrics import MetricWrapperBase

    from llmplatform.core import metrics

    exported = set()
    for series in vars(metrics).values():
        if isinstance(series, MetricWrapperBase):
            for family in series.describe():
                for suffix in ("", "_total", "_bucket", "_count", "_sum"):
                    exported.add(family.name + suffix)
    exported.add("llmplatform_celery_queue_length")  # collected from Redis at scrape time

    dashboard = json.loads((ROOT / "docker" / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    charted = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            charted |= set(re.findall(r"\bllmplatform_[a-z_]+", target["expr"]))
    assert charted <= exported, charted - exported
    # Every series is on the dashboard.
    wanted = {
        "llmplatform_http_request_duration_seconds_bucket",
        "llmplatform_time_to_first_token_seconds_bucket",
        "llmplatform_query_duration_seconds_bucket",
        "llmplatform_tokens_total",
        "llmplatform_cost_usd_total",
        "llmplatform_provider_errors_total",
        "llmplatform_provider_retries_total",
        "llmplatform_provider_fallbacks_total",
        "llmplatform_active_streams",
        "llmplatform_celery_queue_length",
        "llmplatform_celery_tasks_total",
        "llmplatform_background_jobs_total",
    }
    assert wanted <= charted, wanted - charted


def test_the_tracing_profile_wires_collector_to_jaeger_as_the_readme_says():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    services = compose["services"]
    collector, jaeger = services["otel-collector"], services["jaeger"]
    assert collector["profiles"] == jaeger["profiles"] == ["tracing"]
    mount = next(v for v in collector["volumes"] if v.startswith("./otel-collector.yml:"))
    config_path = mount.split(":")[1]
    assert f"--config={config_path}" in collector["command"]

    config = yaml.safe_load((ROOT / "docker" / "otel-collector.yml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(config[kind]), kind
    # OTLP over HTTP in (the platform's exporter), published on the port the README gives.
    http_port = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]
    assert f"{http_port}:{http_port}" in collector["ports"]
    # Out to Jaeger by its compose service name, on its OTLP gRPC port.
    [exporter] = [config["exporters"][name] for name in pipeline["exporters"]]
    assert exporter["endpoint"] == "jaeger:4317"
    assert "jaeger" in collector["depends_on"]
    assert "16686:16686" in jaeger["ports"]

    readme = (ROOT / "README.md").read_text()
    steps = readme[readme.index("To see traces in Jaeger") :]
    assert "--profile tracing up -d otel-collector jaeger" in steps
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:{http_port}" in steps
    assert f"http://otel-collector:{http_port}" in steps
    assert "http://localhost:16686" in steps

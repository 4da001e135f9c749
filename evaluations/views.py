"""Datasets and evaluation runs (``/api/v1/datasets``, ``/api/v1/evaluations``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluations.datasets import (
    dataset_create,
    dataset_delete,
    dataset_items_add,
    dataset_items_from_feedback,
    dataset_items_parse,
)
from evaluations.online_scoring import online_scoring_delete, online_scoring_set
from evaluations.selectors import (
    dataset_get,
    dataset_items,
    dataset_list,
    evaluation_get,
    evaluation_list,
    evaluation_report,
    online_scoring_get,
    online_scoring_report,
)
from evaluations.serializers import (
    DatasetCreateSerializer,
    DatasetItemsAddedSerializer,
    DatasetItemsAddParamsSerializer,
    DatasetItemsAddSerializer,
    DatasetItemSerializer,
    DatasetItemsParamsSerializer,
    DatasetItemsUploadSerializer,
    DatasetSerializer,
    EvaluationCreatedSerializer,
    EvaluationCreateSerializer,
    EvaluationRunSerializer,
    OnlineScoringInputSerializer,
    OnlineScoringSerializer,
)
from evaluations.services import evaluation_create
from llmplatform.core.json_body import DepthLimitedJSONParser
from llmplatform.core.pagination import CursorPageParamsSerializer, NewestFirstCursorPagination
from llmplatform.core.schema import error_response, paginated
from sessions.selectors import experiment_get


class DatasetListView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        summary="List your evaluation datasets, newest first (cursor pagination)",
        operation_id="datasets_list",
        parameters=[CursorPageParamsSerializer],
        responses={200: paginated(DatasetSerializer, name="PaginatedDatasetList")},
    )
    def get(self, request: Request) -> Response:
        CursorPageParamsSerializer(data=request.query_params).is_valid(raise_exception=True)
        paginator = NewestFirstCursorPagination(ordering="-created_at")
        page = paginator.paginate_queryset(dataset_list(owner=request.user), request, view=self)
        return paginator.get_paginated_response(DatasetSerializer(page, many=True).data)

    @extend_schema(
        summary="Create an empty dataset (its name unique among yours)",
        request=DatasetCreateSerializer,
        responses={201: DatasetSerializer, 409: error_response(409, "dataset_exists")},
    )
    def post(self, request: Request) -> Response:
        body = DatasetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dataset = dataset_create(owner=request.user, **body.validated_data)
        return Response(DatasetSerializer(dataset).data, status=201)


class DatasetDetailView(APIView):
    @extend_schema(summary="A dataset", responses={200: DatasetSerializer})
    def get(self, request: Request, dataset_id: str) -> Response:
        return Response(
            DatasetSerializer(dataset_get(owner=request.user, dataset_id=dataset_id)).data
        )

    @extend_schema(summary="Delete a dataset with its items and runs", responses={204: None})
    def delete(self, request: Request, dataset_id: str) -> Response:
        dataset_delete(dataset=dataset_get(owner=request.user, dataset_id=dataset_id))
        return Response(status=204)


class DatasetItemsView(APIView):
    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        summary="A dataset's items, newest first (cursor pagination)",
        operation_id="dataset_items_list",
        parameters=[DatasetItemsParamsSerializer],
        responses={200: paginated(DatasetItemSerializer, name="PaginatedDatasetItemList")},
    )
    def get(self, request: Request, dataset_id: str) -> Response:
        DatasetItemsParamsSerializer(data=request.query_params).is_valid(raise_exception=True)
        dataset = dataset_get(owner=request.user, dataset_id=dataset_id)
        paginator = NewestFirstCursorPagination(ordering="-created_at")
        page = paginator.paginate_queryset(dataset_items(dataset=dataset), request, view=self)
        return paginator.get_paginated_response(DatasetItemSerializer(page, many=True).data)

    @extend_schema(
        summary="Add items: a JSON list, a JSONL or CSV file, or (?from_feedback=down) your "
        "questions users rated down",
        parameters=[DatasetItemsAddParamsSerializer],
        request={
            "application/json": DatasetItemsAddSerializer,
            "multipart/form-data": DatasetItemsUploadSerializer,
        },
        responses={201: DatasetItemsAddedSerializer, 413: error_response(413, "too_many_items")},
    )
    def post(self, request: Request, dataset_id: str) -> Response:
        params = DatasetItemsAddParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        dataset = dataset_get(owner=request.user, dataset_id=dataset_id)
        if "from_feedback" in params.validated_data:
            added = dataset_items_from_feedback(
                dataset=dataset, rating=params.validated_data["from_feedback"]
            )
            return Response({"added": len(added)}, status=201)
        if request.content_type.startswith("multipart/"):
            upload = DatasetItemsUploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            file = upload.validated_data["file"]
            items = dataset_items_parse(filename=file.name, content=file.read())
        else:
            body = DatasetItemsAddSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            items = body.validated_data["items"]
        added = dataset_items_add(dataset=dataset, items=items)
        return Response({"added": len(added)}, status=201)


class EvaluationListView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        summary="List your evaluation runs, newest first (cursor pagination)",
        operation_id="evaluations_list",
        parameters=[CursorPageParamsSerializer],
        responses={200: paginated(EvaluationRunSerializer, name="PaginatedEvaluationRunList")},
    )
    def get(self, request: Request) -> Response:
        CursorPageParamsSerializer(data=request.query_params).is_valid(raise_exception=True)
        paginator = NewestFirstCursorPagination(ordering="-created_at")
        page = paginator.paginate_queryset(evaluation_list(owner=request.user), request, view=self)
        return paginator.get_paginated_response(EvaluationRunSerializer(page, many=True).data)

    @extend_schema(
        summary="Start an evaluation run: every item of a dataset against every target, "
        "scored (runs in the background; poll GET /api/v1/evaluations/{id})",
        request=EvaluationCreateSerializer,
        responses={202: EvaluationCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        body = EvaluationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        run = evaluation_create(
            owner=request.user,
            api_key=request.auth,
            dataset=dataset_get(owner=request.user, dataset_id=data["dataset"]),
            targets=data["targets"],
            scorers=data["scorers"],
            repeats=data["repeats"],
        )
        return Response(EvaluationCreatedSerializer(run).data, status=202)


class EvaluationDetailView(APIView):
    @extend_schema(
        summary="An evaluation run: progress, and per target and scorer the mean with its "
        "95% interval, cost, latency and the worst items with their answers and reasons",
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, run_id: str) -> Response:
        return Response(evaluation_report(run=evaluation_get(owner=request.user, run_id=run_id)))


class ExperimentOnlineScoringView(APIView):
    parser_classes = [DepthLimitedJSONParser]

    @extend_schema(
        summary="An experiment's online scoring, and what its judges spent today",
        responses={200: OnlineScoringSerializer, 404: error_response(404, "not_found")},
    )
    def get(self, request: Request, experiment_id: str) -> Response:
        experiment = experiment_get(owner=request.user, experiment_id=experiment_id)
        config = online_scoring_get(experiment=experiment)
        return Response(OnlineScoringSerializer(online_scoring_report(config=config)).data)

    @extend_schema(
        summary="Score a sample of the experiment's live answers in the background, within "
        "a daily cost cap (the scores show per arm in its results)",
        request=OnlineScoringInputSerializer,
        responses={200: OnlineScoringSerializer},
    )
    def put(self, request: Request, experiment_id: str) -> Response:
        experiment = experiment_get(owner=request.user, experiment_id=experiment_id)
        body = OnlineScoringInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        config = online_scoring_set(
            experiment=experiment, api_key=request.auth, **body.validated_data
        )
        return Response(OnlineScoringSerializer(online_scoring_report(config=config)).data)

    @extend_schema(
        summary="Stop scoring the experiment's live answers (the scores stay in its results)",
        responses={204: None},
    )
    def delete(self, request: Request, experiment_id: str) -> Response:
        experiment = experiment_get(owner=request.user, experiment_id=experiment_id)
        online_scoring_delete(config=online_scoring_get(experiment=experiment))
        return Response(status=204)

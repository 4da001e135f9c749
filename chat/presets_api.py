"""The chat page's presets (``/chat/api/presets``): the signed-in user's saved answer
settings and question options. Same rules as ``chat.api``: login session only, and the
end user is always the signed-in user."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from chat.api import ChatApiView, ConversationSettingsSerializer
from sessions.models import ConversationPreset
from sessions.presets import preset_delete, preset_save, presets_list


class PresetSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    settings = ConversationSettingsSerializer(required=False, default=dict)
    options = serializers.DictField(required=False, default=dict)


def _preset(preset: ConversationPreset) -> dict:
    return {
        "id": str(preset.pk),
        "name": preset.name,
        "settings": preset.settings,
        "options": preset.options,
    }


class PresetListView(ChatApiView):
    def get(self, request: Request) -> Response:
        presets = presets_list(owner=request.user, user_id=self.end_user(request))
        return Response({"presets": [_preset(p) for p in presets]})

    def post(self, request: Request) -> Response:
        """Save (a preset with the same name is replaced)."""
        serializer = PresetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preset = preset_save(
            owner=request.user,
            user_id=self.end_user(request),
            name=serializer.validated_data["name"],
            settings=dict(serializer.validated_data["settings"]),
            options=dict(serializer.validated_data["options"]),
        )
        return Response(_preset(preset), status=201)


class PresetDetailView(ChatApiView):
    def delete(self, request: Request, preset_id: str) -> Response:
        preset_delete(owner=request.user, user_id=self.end_user(request), preset_id=preset_id)
        return Response(status=204)

"""drf-spectacular extensions: the OpenAPI schema of a strategy parameter (from its ``strategy.params.Param``),
of a money field, and of the bearer-token authentication. Imported by ``ApiConfig.ready``."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension

from ledger.amounts import MAX_SCALE
from strategy.params import CHOICE_MAX_LENGTH, PARAM_SCALE, TEXT_MAX_LENGTH, Kind


def _decimal(scale: int, *, signed: bool = False) -> dict:
    sign = "-?" if signed else ""
    return {"type": "string", "format": "decimal", "pattern": rf"^{sign}\d+(\.\d{{1,{scale}}})?$",
            "description": "a decimal string (a JSON float is refused: it cannot represent money exactly)"}


class ParamFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "api.serializers.ParamField"

    def map_serializer_field(self, auto_schema, direction):
        schema = self._type(self.target.param)
        if not self.target.param.required and self.target.param.default is not None:
            schema["default"] = self.target.to_representation(self.target.param.default)
        return schema

    @staticmethod
    def _type(param) -> dict:
        if param.kind is Kind.DECIMAL:
            schema = _decimal(PARAM_SCALE)
            if param.fraction:
                schema["description"] += "; a fraction in [0, 1]"
            return schema
        if param.kind is Kind.INTEGER:
            return {"type": "integer", "minimum": 1, "maximum": param.maximum}
        if param.kind is Kind.BOOLEAN:
            return {"type": "boolean"}
        if param.kind is Kind.TEXT:
            schema = {"type": "string", "maxLength": TEXT_MAX_LENGTH}
            if param.pattern:
                schema["pattern"] = f"^{param.pattern}$"
            return schema
        return {"type": "string", "enum": list(param.choices), "maxLength": CHOICE_MAX_LENGTH}


class MoneyFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "api.serializers.MoneyField"

    def map_serializer_field(self, auto_schema, direction):
        return _decimal(MAX_SCALE)


class ApiTokenAuthenticationExtension(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "a token made by `manage.py api_token create USERNAME --mixin-user-id UUID`"}

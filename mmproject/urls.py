"""URL routes: admin, the JSON API, metrics, and the exchange simulator's HTTP API."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("orders.urls")),
    path("", include("exchanges.urls")),
]

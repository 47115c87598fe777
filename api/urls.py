"""URL routes of the JSON API (included under /api/)."""
from django.urls import path

from . import views

urlpatterns = [
    path("orders/", views.order_create_view, name="order-create"),
    path("orders/<str:order_id>/params/", views.order_params_view, name="order-params"),
]

from __future__ import annotations

from django.urls import path

from products.views import ProductSearchView

urlpatterns = [
    path("products/search", ProductSearchView.as_view(), name="product-search"),
]

from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("io", views.io_bound),
    path("cpu", views.cpu_bound),
    path("orm", views.orm_page),
]

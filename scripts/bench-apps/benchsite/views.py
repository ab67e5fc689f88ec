"""The benchmark's views.

/io   waits 20 ms without using the CPU: it stands for a database query or an
      API call (django-io, issue 13).
/cpu  renders a 40-row table through a Django template, holding the GIL: about
      1.3 ms, 2 ms per request in all, on the 2-CPU VM of BENCHMARKS.md (django-cpu).
/orm  reads rows through the ORM (SQLite) and renders them: the warm-up of the
      memory scenario, with /admin/login/ (django-memory, issue 15).
"""

import time

from django.contrib.auth.models import Permission
from django.http import HttpResponse
from django.shortcuts import render

ROWS = [{"id": i, "name": f"item {i}", "price": i * 1.25, "tags": ["a", "b", "c"]} for i in range(40)]


def io_bound(request):
    time.sleep(0.02)
    return HttpResponse(b"waited 20 ms\n", content_type="text/plain")


def cpu_bound(request):
    return render(request, "benchsite/table.html", {"rows": ROWS})


def orm_page(request):
    perms = Permission.objects.select_related("content_type").order_by("id")
    return render(request, "benchsite/perms.html", {"perms": perms})

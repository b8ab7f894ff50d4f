from django.contrib import admin

from .models import SweepRun


@admin.register(SweepRun)
class SweepRunAdmin(admin.ModelAdmin):
    list_display = ["task", "finished_at"]
    readonly_fields = ["task", "finished_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

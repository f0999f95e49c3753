"""One APIRouter per concern, wired into the app by app.api.main."""

from rest_framework.routers import SimpleRouter

from senders.views import SenderViewSet

router = SimpleRouter(trailing_slash=False)
router.register("senders", SenderViewSet, basename="sender")

urlpatterns = router.urls

"""realtime/: the Cloud Run service (Socket.IO relay; REST API and dashboard to come)."""

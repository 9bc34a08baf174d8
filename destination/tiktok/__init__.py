"""The TikTok Events API 2.0 destination: settings, actions, normalisation, sandbox."""

"""Gateway services (each a runtime.Service) wired together by composition.py."""

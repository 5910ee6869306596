"""Host tools: what runs on an operator's or installer's PC (`mamori ...`)."""

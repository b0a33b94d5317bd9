"""Operations on a served model: load tests (`genai loadtest`), monitoring and drift checks."""

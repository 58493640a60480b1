"""The bundled editing model (Step1X-Edit design, small) that `verify` trains and scores."""

# cxpipeline on the official Apache Airflow 3 image: WeasyPrint's system libraries plus this
# package, installed against the versions in requirements.lock (the versions the tests ran on).
FROM apache/airflow:3.3.2-python3.11

USER root
# Pango/HarfBuzz for WeasyPrint; poppler-utils for pdftotext/pdftoppm when inspecting packs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core poppler-utils \
 && apt-get autoremove -yqq --purge \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

USER airflow
COPY --chown=airflow:root . /opt/cxpipeline
# Keep the image's Airflow version; take every other pin from the lock. Editable, so the
# templates/ folder next to the package is found (and can be mounted over in compose).
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
      -c /opt/cxpipeline/requirements.lock -e /opt/cxpipeline \
 && python -c "import cxpipeline.pipeline, cxpipeline.delivery, weasyprint"

ENV CXPIPELINE_TEMPLATES=/opt/cxpipeline/templates \
    CXPIPELINE_PACKS_DIR=/opt/airflow/config/packs \
    CXPIPELINE_OUTPUT_ROOT=/opt/airflow/out

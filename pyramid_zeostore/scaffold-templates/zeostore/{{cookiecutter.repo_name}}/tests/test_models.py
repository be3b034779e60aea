from pyramid_zeostore import Folder

from {{ cookiecutter.repo_name }}.models import Document, Site, appmaker


def test_appmaker_makes_the_site_once(zodb_root):
    site = appmaker(zodb_root)
    assert isinstance(site, Site)
    assert isinstance(site, Folder)
    assert site.title == "{{ cookiecutter.project_name }}"
    assert appmaker(zodb_root) is site


def test_a_document_is_saved_in_its_folder(zodb_root, zodb_conn, zodb_db):
    site = appmaker(zodb_root)
    site['doc'] = Document('A title', 'Some text.')
    zodb_conn.transaction_manager.commit()

    # Another connection (another process would see the same) reads it.
    other = zodb_db.open()
    try:
        doc = other.root()['app_root']['doc']
        assert (doc.title, doc.body) == ('A title', 'Some text.')
        assert isinstance(doc.__parent__, Site)
        assert doc.__name__ == 'doc'
    finally:
        other.transaction_manager.abort()
        other.close()
